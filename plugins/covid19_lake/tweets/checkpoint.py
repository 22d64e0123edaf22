"""Where recent search resumes: the since_id checkpoint and the backlog of an interrupted window.

Recent search returns the newest tweets first. When a run stops before the last page (page budget or a
rate-limit reset too far away), the tweets between the old since_id and the oldest tweet delivered are
still missing. Moving since_id to the newest id would skip them; keeping it would fetch the delivered
ones again. So the state keeps that window open as a backlog, `(since_id, backlog_until_id)`, and only
after the backlog is drained does since_id move to `backlog_newest_id`. The state is saved after every
page that Firehose accepted, so a crash in the middle of a run neither skips nor repeats a tweet.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class SearchState:
    since_id: str | None = None
    backlog_until_id: str | None = None
    backlog_newest_id: str | None = None
    # Used only before the first tweet is ever seen: where the very first window starts.
    start_time: str | None = None

    @property
    def has_backlog(self) -> bool:
        return self.backlog_until_id is not None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> SearchState:
        if not text:
            return cls()
        raw = json.loads(text)
        if not isinstance(raw, dict):
            raise ValueError(f"tweets checkpoint must be a JSON object, got {type(raw).__name__}: {text[:80]!r}")
        unknown = set(raw) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"tweets checkpoint has unknown keys {sorted(unknown)}")
        return cls(**{k: (str(v) if v is not None else None) for k, v in raw.items()})


def after_page(state: SearchState, *, window_since_id: str | None, window_until_id: str | None,
               window_start_time: str | None, newest_id: str, oldest_id: str) -> SearchState:
    """State once a page of the window was delivered while more pages follow: the rest is a backlog."""
    newest = state.backlog_newest_id if window_until_id is not None else newest_id
    return SearchState(since_id=window_since_id, backlog_until_id=oldest_id, backlog_newest_id=newest,
                       start_time=window_start_time if window_since_id is None else None)


def after_window(state: SearchState, *, window_until_id: str | None, newest_id: str | None,
                 window_end_time: str) -> SearchState:
    """State once every page of a window was delivered."""
    if window_until_id is not None:
        # Backlog drained: everything up to the newest id of the interrupted window is in.
        return SearchState(since_id=state.backlog_newest_id)
    if newest_id is not None:
        return SearchState(since_id=newest_id)
    if state.since_id is None:
        # Nothing matched yet: the next run starts where this window ended, not `lookback` before it.
        return SearchState(start_time=window_end_time)
    return SearchState(since_id=state.since_id)


class CheckpointStore(Protocol):
    def load(self) -> SearchState: ...

    def save(self, state: SearchState) -> None: ...


class VariableCheckpointStore:
    """An Airflow Variable (the metadata DB survives MWAA restarts; the DAG runs one at a time)."""

    def __init__(self, key: str) -> None:
        self.key = key

    def load(self) -> SearchState:
        from airflow.sdk import Variable

        return SearchState.from_json(Variable.get(self.key, default=None))

    def save(self, state: SearchState) -> None:
        from airflow.sdk import Variable

        Variable.set(self.key, state.to_json(), description="since_id checkpoint of tweets_ingest")


class FileCheckpointStore:
    """A JSON file, for the local stack and tests; written atomically."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> SearchState:
        return SearchState.from_json(self.path.read_text() if self.path.exists() else None)

    def save(self, state: SearchState) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(state.to_json())
        tmp.replace(self.path)
