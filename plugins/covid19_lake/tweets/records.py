"""The one record shape of raw/tweets: the filtered stream's per-tweet message.

`{"data": {tweet}, "includes": {"users": [...], "places": [...]}, "matching_rules": [...]}`, one per line.
Recent-search pages carry many tweets and one shared `includes`; each tweet gets only the users and places
it references, so a line is self-contained whatever produced it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

# What both producers ask the API for; the Spark job reads exactly these fields.
TWEET_FIELDS = ["created_at", "lang", "author_id", "public_metrics", "entities", "geo", "possibly_sensitive"]
EXPANSIONS = ["author_id", "geo.place_id"]
USER_FIELDS = ["username", "name", "location", "verified"]
PLACE_FIELDS = ["country_code", "full_name", "name", "place_type", "country"]

SEARCH_RULE_TAG = "recent-search"


def _referenced_ids(tweet: Mapping[str, Any]) -> tuple[set[str], set[str]]:
    users = {str(tweet["author_id"])} if tweet.get("author_id") else set()
    place_id = (tweet.get("geo") or {}).get("place_id")
    return users, ({str(place_id)} if place_id else set())


def split_search_page(page: Mapping[str, Any], query: str) -> Iterator[dict[str, Any]]:
    """Reshape one recent-search page into per-tweet stream messages.

    `matching_rules` names the query that found the tweet (search has no rule ids, so `id` is null and
    `tag` holds the query) so downstream code can tell the two producers apart.
    """
    includes = page.get("includes") or {}
    users = {str(u.get("id")): u for u in includes.get("users") or []}
    places = {str(p.get("id")): p for p in includes.get("places") or []}
    for tweet in page.get("data") or []:
        user_ids, place_ids = _referenced_ids(tweet)
        yield {
            "data": tweet,
            "includes": {
                "users": [users[i] for i in sorted(user_ids) if i in users],
                "places": [places[i] for i in sorted(place_ids) if i in places],
            },
            "matching_rules": [{"id": None, "tag": f"{SEARCH_RULE_TAG}: {query}"}],
        }


def to_line(message: Mapping[str, Any]) -> bytes:
    """One record as Firehose stores it: compact UTF-8 JSON and a newline, so objects are JSON Lines."""
    return (json.dumps(message, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def stream_line_to_record(raw: bytes | str) -> bytes | None:
    """Normalise one line of the filtered stream; None for lines that carry no tweet (errors-only frames)."""
    message = json.loads(raw)
    if not isinstance(message, dict) or not isinstance(message.get("data"), dict):
        return None
    message.setdefault("includes", {})
    message["includes"].setdefault("users", [])
    message["includes"].setdefault("places", [])
    message.setdefault("matching_rules", [])
    return to_line(message)
