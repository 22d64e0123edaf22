"""tweets_ingest on the session's local stack, driven by Airflow's dag.test(): a refused token.

The whole chain (two intervals through since_id, 429s and Firehose faults, then tweets_process and the
weekly join) runs under the real scheduler: tests/e2e/test_tweets_real_scheduler.py.

The corpus is synthetic and dated around the real clock: Firehose (moto) names objects by their real
arrival hour, and the tweets job quarantines tweets that arrive days after their creation as late.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from covid19_lake.tweets.checkpoint import SearchState
from local import airflow_local
from local.tweets_synth import generate
from local.x_api import XApiStandIn

pytestmark = pytest.mark.stack
TOKEN = "AAAA-local-stack-x-token-never-logged"


def raw_files(lake: Path) -> set[Path]:
    return {p for p in (lake / "raw" / "tweets").glob("*/*/*/*/*") if p.is_file() and not p.name.startswith(".")}


def checkpoint(name: str) -> SearchState:
    from airflow.models import Variable

    return SearchState.from_json(Variable.get(name, default_var=None))


@pytest.fixture
def tweets_env(airflow_on_local_stack, monkeypatch, request):
    """The stand-in with a corpus around now, and the Variable and connection tweets_ingest reads."""
    from airflow.models import Variable

    stack = airflow_on_local_stack
    # The virtual clock stays behind the real one (t0 + 15 min at most): a tweet must not be created after
    # the real hour it arrives in, or the tweets job quarantines it.
    t0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=20)
    corpus = generate(seed=19, start=t0 - timedelta(minutes=90), end=t0 + timedelta(minutes=60),
                      tweets_per_day=18_000)
    api = XApiStandIn(corpus, bearer_token=TOKEN, now=t0).start()
    name = f"tweets_checkpoint_{request.node.name}"[:250]
    variable = airflow_local.lake_variable(stack, tweets={"x_api_base_url": api.base_url, "max_pages": 50,
                                                          "max_rate_limit_wait_seconds": 30,
                                                          "checkpoint_variable": name})
    assert variable["tweets"]["delivery_stream"] == stack.outputs["TweetsDeliveryStreamName"]
    monkeypatch.setenv("AIRFLOW_VAR_COVID19_LAKE", json.dumps(variable))
    monkeypatch.setenv("AIRFLOW_CONN_X_API", json.dumps({"conn_type": "generic", "password": TOKEN}))
    # The first window starts at a known time (the checkpoint's start_time), not "an hour before the task ran".
    Variable.set(name, SearchState(start_time=(t0 - timedelta(minutes=60)).strftime("%Y-%m-%dT%H:%M:%SZ")).to_json())
    try:
        yield stack, api, corpus, t0, name
    finally:
        api.stop()
        Variable.delete(name)


def test_a_wrong_token_fails_the_run_naming_the_connection_and_never_logging_the_token(
        tweets_env, monkeypatch, caplog, capfd):
    stack, api, _corpus, _t0, name = tweets_env
    caplog.set_level(logging.INFO)
    monkeypatch.setenv("AIRFLOW_CONN_X_API", json.dumps({"conn_type": "generic", "password": "wrong-secret-42"}))
    before = raw_files(Path(stack.lake_dir))
    run = airflow_local.run_dag("tweets_ingest")
    states = airflow_local.task_states(run)
    assert str(run.state) == "failed" and states == {"fetch_tweets": "failed"}, states
    assert [r["status"] for r in api.requests] == [401]  # failed at once: no retries of a refused token
    output = caplog.text + "".join(capfd.readouterr())
    assert "X API rejected the bearer token from Airflow connection 'x_api' (password)" in output
    assert "wrong-secret-42" not in output and TOKEN not in output
    assert raw_files(Path(stack.lake_dir)) == before
    assert checkpoint(name).since_id is None
