"""spark_jobs/tweets.py on a small lake built from the recorded API responses."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest
import tweets as job

from covid19_lake.tweets.records import split_search_page, to_line

FIXTURES = Path(__file__).parent / "fixtures" / "x_api"


def page_lines(name: str) -> list[bytes]:
    body = json.loads((FIXTURES / name).read_text())["response"]["body"]
    return [to_line(m) for m in split_search_page(body, "covid")]


def message(tweet_id: str, created_at: str, text: str, likes: int = 0, lang: str = "en") -> bytes:
    return to_line({"data": {"id": tweet_id, "text": text, "created_at": created_at, "lang": lang,
                             "author_id": "1", "public_metrics": {"retweet_count": 0, "reply_count": 0,
                                                                  "like_count": likes, "quote_count": 0}},
                    "includes": {"users": [{"id": "1", "username": "someone"}], "places": []},
                    "matching_rules": []})


def put(lake: Path, hour: str, name: str, lines: list[bytes]) -> None:
    folder = lake / "raw" / "tweets" / hour
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(b"".join(lines))


def build_lake(lake: Path) -> Path:
    page1 = page_lines("search_page1.json")
    bad = [b'{"data": {"id": "1366800000000000999", "text": "cut\n', b'{"data": {"id": "77", "text": "no date"}}\n']
    put(lake, "2021/03/02/18", "a", [*page1, *bad])
    # The same tweet fetched again an hour later with more likes, and the second page.
    again = json.loads(page1[0])
    again["data"]["public_metrics"]["like_count"] = 99
    put(lake, "2021/03/02/19", "b", [to_line(again), *page_lines("search_page2.json")])
    put(lake, "2021/03/03/02", "c", [message("1366900000000000001", "2021-03-02T23:59:58.000Z",
                                             "Midnight update: hospitals are NOT coping")])
    put(lake, "2021/03/03/10", "d", [message("1366900000000000002", "2021-03-02T20:00:00.000Z", "very late"),
                                     message("1366900000000000003", "2021-03-03T09:30:00.000Z",
                                             "Great news, the vaccine rollout is going well!", lang="en")])
    return lake


@pytest.fixture(scope="module")
def processed(spark, tmp_path_factory):
    """One run over both days, shared by the read-only assertions (Spark runs are the slow part)."""
    lake = build_lake(tmp_path_factory.mktemp("tweets") / "lake")
    return lake, job.run(spark, args(lake))


def args(lake: Path, *extra: str):
    return job.parse_args(["--lake", str(lake), "--start-date", "2021-03-02", "--end-date", "2021-03-03",
                           *extra])


def read(spark, path: Path):
    return spark.read.parquet(str(path))


def test_tweets_are_shaped_deduplicated_and_partitioned_by_created_date(spark, processed):
    lake, summary = processed
    assert summary["totals"]["dates_failed"] == 0
    day = summary["dates"]["2021-03-02"]
    assert day["status"] == "COMPLETED"
    assert (day["rows_written"], day["rows_quarantined"], day["duplicates_removed"]) == (6, 2, 1)

    tweets = read(spark, lake / "processed/tweets")
    types = dict(tweets.dtypes)
    assert types == {"tweet_id": "string", "created_at": "timestamp", "lang": "string", "author_id": "string",
                     "author_username": "string", "text": "string", "hashtags": "array<string>",
                     "mentions": "array<string>", "country_code": "string", "retweet_count": "bigint",
                     "reply_count": "bigint", "like_count": "bigint", "quote_count": "bigint",
                     "sentiment": "double", "sentiment_label": "string", "created_date": "date"}
    rows = {r.tweet_id: r for r in tweets.collect()}
    assert sorted(r.created_date.isoformat() for r in rows.values()).count("2021-03-02") == 6
    first = rows["1366800000000000305"]
    assert first.like_count == 99  # the newest copy wins
    assert first.hashtags == ["covid19", "vaccine"] and first.mentions == ["dr_ana"]
    assert (first.country_code, first.author_username) == ("US", "health_news")
    assert first.sentiment_label == "positive"
    assert rows["1366799000000000202"].country_code == "PT"
    assert rows["1366798000000000101"].country_code is None
    assert rows["1366798000000000101"].sentiment_label == "negative"
    assert rows["1366900000000000001"].created_date.isoformat() == "2021-03-02"  # arrived after midnight
    assert "1366900000000000002" not in rows  # arrived 10h after its day: quarantined as late
    assert rows["1366900000000000003"].created_date.isoformat() == "2021-03-03"


def test_bad_and_late_lines_go_to_quarantine_with_a_reason(spark, processed):
    lake, _ = processed
    quarantined = spark.read.json(str(lake / "quarantine/tweets")).collect()
    reasons = {(r.raw_date.isoformat() if hasattr(r.raw_date, "isoformat") else str(r.raw_date), r.reason)
               for r in quarantined}
    assert reasons == {
        ("2021-03-02", "not a JSON object of the stream message shape"),
        ("2021-03-02", "data.created_at missing or not ISO 8601 (yyyy-MM-ddTHH:mm:ss[.SSS]Z)"),
        ("2021-03-03", "late: arrived more than 6h after the end of its created day"),
    }
    late = next(r for r in quarantined if r.reason.startswith("late"))
    assert json.loads(late.line)["data"]["id"] == "1366900000000000002"
    assert late.source_file.endswith("/raw/tweets/2021/03/03/10/d")


def test_rerun_is_idempotent(spark, processed):
    lake, first = processed
    second = job.run(spark, args(lake))
    assert second["totals"] == first["totals"]
    tweets = read(spark, lake / "processed/tweets")
    assert tweets.count() == tweets.select("tweet_id").distinct().count() == 7
    assert spark.read.json(str(lake / "quarantine/tweets")).count() == 3
    assert read(spark, lake / "processed/tweet_daily_stats").count() == 4


def test_daily_stats_per_country(spark, processed):
    lake, _ = processed
    stats = {(r.date.isoformat(), r.country_code): r
             for r in read(spark, lake / "processed/tweet_daily_stats").collect()}
    assert set(stats) == {("2021-03-02", "US"), ("2021-03-02", "PT"), ("2021-03-02", None),
                          ("2021-03-03", None)}
    us = stats[("2021-03-02", "US")]
    assert us.tweet_count == 2
    assert us.top_hashtags == ["covid19", "vaccine"]
    assert "are" not in us.top_words and "the" not in us.top_words and "vaccines" in us.top_words
    unknown = stats[("2021-03-02", None)]
    assert not any(w.startswith("http") or w in ("t", "co", "abc123") for w in unknown.top_words)
    assert len(unknown.top_words) <= 10
    assert us.mean_sentiment == pytest.approx(
        sum(r.sentiment for r in read(spark, lake / "processed/tweets").collect() if r.country_code == "US") / 2)


def test_hour_arguments_pick_the_dates_that_hour_can_feed():
    a = job.parse_args(["--lake", "x", "--start-hour", "2021-03-03T02", "--late-hours", "6"])
    assert [d.isoformat() for d in job.target_dates(a)] == ["2021-03-02", "2021-03-03"]
    b = job.parse_args(["--lake", "x", "--start-hour", "2021-03-03T09", "--late-hours", "6"])
    assert [d.isoformat() for d in job.target_dates(b)] == ["2021-03-03"]
    c = job.parse_args(["--lake", "x", "--start-hour", "2021-03-02T23", "--late-hours", "6"])
    assert [d.isoformat() for d in job.target_dates(c)] == ["2021-03-02", "2021-03-03"]


def test_a_failing_date_is_reported_and_exits_1_after_the_others_are_written(spark, tmp_path):
    lake = tmp_path / "lake"
    # A good day delivered gzip-compressed, as Firehose writes with GZIP on, and a day with a corrupt object.
    good = lake / "raw/tweets/2021/03/02/18"
    good.mkdir(parents=True)
    (good / "stream-1-2021-03-02-18-00-00-x.gz").write_bytes(gzip.compress(b"".join(page_lines("search_page2.json"))))
    broken = lake / "raw/tweets/2021/03/04/12"
    broken.mkdir(parents=True)
    (broken / "part.gz").write_bytes(b"this is not gzip")
    summary_path = tmp_path / "summary.json"
    code = job.main(["--lake", str(lake), "--start-date", "2021-03-02", "--end-date", "2021-03-04",
                     "--summary-uri", str(summary_path)])
    summary = json.loads(summary_path.read_text())
    assert code == 1
    assert summary["dates"]["2021-03-04"]["status"] == "FAILED"
    assert "2021/03/04/12/part.gz" in summary["dates"]["2021-03-04"]["error"]
    assert summary["dates"]["2021-03-02"]["status"] == "COMPLETED"
    assert summary["dates"]["2021-03-03"]["status"] == "NO_INPUT"
    assert summary["job"] == "tweets" and summary["application_id"]
    assert summary["totals"]["rows_written"] == 2 and summary["totals"]["dates_failed"] == 1
    assert read(spark, lake / "processed/tweets").count() == 2


def test_vendored_lexicon_is_vaders_own():
    import vaderSentiment

    packaged = Path(vaderSentiment.__file__).parent / "vader_lexicon.txt"
    vendored = job.DEFAULT_REFERENCE / "vader_lexicon.txt"
    assert hashlib.sha256(vendored.read_bytes()).digest() == hashlib.sha256(packaged.read_bytes()).digest()


SENTENCES = [
    "VADER is smart, handsome, and funny.", "VADER is smart, handsome, and funny!",
    "VADER is very smart, handsome, and funny.", "VADER is VERY SMART, handsome, and FUNNY.",
    "VADER is VERY SMART, handsome, and FUNNY!!!", "VADER is not smart, handsome, nor funny.",
    "The book was good.", "At least it isn't a horrible book.", "The book was only kind of good.",
    "The plot was good, but the characters are uncompelling and the dialog is not great.",
    "Today SUX!", "Today only kinda sux! But I'll get by, lol", "Make sure you :) or :D today!",
    "Not bad at all", "No vaccine, no hope, no way out", "Hospitals are overwhelmed and nurses are exhausted",
    "So grateful for the healthcare workers!!", "Cases are rising again?? This is terrible",
    "I got my second dose today, feeling great", "The lockdown is extremely frustrating",
    "Masks work. Wear one.", "Another record day of deaths. Heartbreaking.", "never so happy to see a test",
    "Without doubt the best news this year", "I am hardly worried about the variant",
    "The new guidance is not very clear", "", "Covid-19 update: 1,234 new cases",
    "I don't think the vaccine is dangerous", "This is the worst pandemic response ever",
]


def test_sentiment_follows_vader(spark):
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    lexicon = job.load_lexicon(spark, str(job.DEFAULT_REFERENCE))
    tokens = {r.token for r in lexicon.select("token").collect()}
    df = spark.createDataFrame([(str(i), s) for i, s in enumerate(SENTENCES)], "tweet_id string, text string")
    ours = {int(r.tweet_id): r for r in job.score_sentiment(df, lexicon, tokens).collect()}
    diffs = []
    for i, sentence in enumerate(SENTENCES):
        expected = analyzer.polarity_scores(sentence)["compound"]
        diffs.append((abs(ours[i].sentiment - expected), sentence, ours[i].sentiment, expected))
    exact = sum(d < 0.01 for d, *_ in diffs)
    assert exact >= len(SENTENCES) - 3, sorted(diffs, reverse=True)[:5]
    assert max(d for d, *_ in diffs) < 0.35, sorted(diffs, reverse=True)[:5]
    assert ours[0].sentiment_label == "positive" and ours[5].sentiment_label == "negative"
    assert ours[26].sentiment == 0.0 and ours[26].sentiment_label == "neutral"
