"""Raw tweets (stream-shaped JSON lines) -> processed/tweets and processed/tweet_daily_stats.

    spark-submit --py-files lib.zip tweets.py --lake s3://lake --start-date 2021-03-02 \
        --end-date 2021-03-02 [--start-hour 2021-03-02T05 --end-hour 2021-03-02T05] \
        [--late-hours 6] [--reference-uri s3://artifacts/spark_jobs/reference] [--summary-uri URI]

Raw objects are laid out by arrival hour ({lake}/raw/tweets/YYYY/MM/DD/HH/), the processed table by the
day a tweet was created. A created_date=D partition is always rebuilt whole, from every raw hour that
can hold D's tweets: 23:00 of D-1 (clock skew) up to D+1 + --late-hours. Rebuilding whole partitions
with dynamic overwrite makes reruns idempotent and removes duplicates across files and runs. A tweet that
arrives later than that window is not dropped: it goes to quarantine with the reason "late".

Partitions written for a date D (for Glue): processed/tweets/created_date=D,
processed/tweet_daily_stats/date=D and quarantine/tweets/raw_date=D/raw_hour=HH for D's arrival hours.
"""

from __future__ import annotations

import argparse
import math
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from spark_common import path_exists, summary

JOB = "tweets"
DEFAULT_REFERENCE = Path(__file__).resolve().parent / "reference"

RAW_SCHEMA = T.StructType([
    T.StructField("data", T.StructType([
        T.StructField("id", T.StringType()),
        T.StructField("text", T.StringType()),
        T.StructField("created_at", T.StringType()),
        T.StructField("lang", T.StringType()),
        T.StructField("author_id", T.StringType()),
        T.StructField("possibly_sensitive", T.BooleanType()),
        T.StructField("public_metrics", T.StructType([
            T.StructField(name, T.LongType())
            for name in ("retweet_count", "reply_count", "like_count", "quote_count")])),
        T.StructField("entities", T.StructType([
            T.StructField("hashtags", T.ArrayType(T.StructType([T.StructField("tag", T.StringType())]))),
            T.StructField("mentions", T.ArrayType(T.StructType([T.StructField("username", T.StringType())]))),
        ])),
        T.StructField("geo", T.StructType([T.StructField("place_id", T.StringType())])),
    ])),
    T.StructField("includes", T.StructType([
        T.StructField("users", T.ArrayType(T.StructType([
            T.StructField("id", T.StringType()), T.StructField("username", T.StringType())]))),
        T.StructField("places", T.ArrayType(T.StructType([
            T.StructField("id", T.StringType()), T.StructField("country_code", T.StringType())]))),
    ])),
    T.StructField("_corrupt", T.StringType()),
])

TWEET_COLUMNS = ["tweet_id", "created_at", "lang", "author_id", "author_username", "text", "hashtags",
                 "mentions", "country_code", "retweet_count", "reply_count", "like_count", "quote_count",
                 "sentiment", "sentiment_label"]

# VADER 3.3.2's constants and word lists (vaderSentiment/vaderSentiment.py), used by score_sentiment.
B_INCR, B_DECR, C_INCR, N_SCALAR = 0.293, -0.293, 0.733, -0.74
NEGATE = ["aint", "arent", "cannot", "cant", "couldnt", "darent", "didnt", "doesnt", "ain't", "aren't", "can't",
          "couldn't", "daren't", "didn't", "doesn't", "dont", "hadnt", "hasnt", "havent", "isnt", "mightnt",
          "mustnt", "neither", "don't", "hadn't", "hasn't", "haven't", "isn't", "mightn't", "mustn't", "neednt",
          "needn't", "never", "none", "nope", "nor", "not", "nothing", "nowhere", "oughtnt", "shant",
          "shouldnt", "uhuh", "wasnt", "werent", "oughtn't", "shan't", "shouldn't", "uh-uh", "wasn't",
          "weren't", "without", "wont", "wouldnt", "won't", "wouldn't", "rarely", "seldom", "despite"]
BOOST_UP = ["absolutely", "amazingly", "awfully", "completely", "considerable", "considerably", "decidedly",
            "deeply", "effing", "enormous", "enormously", "entirely", "especially", "exceptional",
            "exceptionally", "extreme", "extremely", "fabulously", "flipping", "flippin", "frackin", "fracking",
            "fricking", "frickin", "frigging", "friggin", "fully", "fuckin", "fucking", "fuggin", "fugging",
            "greatly", "hella", "highly", "hugely", "incredible", "incredibly", "intensely", "major", "majorly",
            "more", "most", "particularly", "purely", "quite", "really", "remarkably", "so", "substantially",
            "thoroughly", "total", "totally", "tremendous", "tremendously", "uber", "unbelievably", "unusually",
            "utter", "utterly", "very"]
BOOST_DOWN = ["almost", "barely", "hardly", "kinda", "kindof", "kind-of", "less", "little", "marginal",
              "marginally", "occasional", "occasionally", "partly", "scarce", "scarcely", "slight", "slightly",
              "somewhat", "sorta", "sortof", "sort-of"]

# Languages whose stop words Spark ships (StopWordsRemover), by the ISO 639-1 code X reports in `lang`.
STOPWORD_LANGUAGES = {"da": "danish", "nl": "dutch", "en": "english", "fi": "finnish", "fr": "french",
                      "de": "german", "hu": "hungarian", "it": "italian", "no": "norwegian", "pt": "portuguese",
                      "ru": "russian", "es": "spanish", "sv": "swedish", "tr": "turkish"}
OTHER_LANG = "*"


# ---------------------------------------------------------------- windows and paths
def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tweets.py", description=__doc__.split("\n")[0])
    parser.add_argument("--lake", required=True, help="lake root URI (s3://bucket/prefix or a directory)")
    parser.add_argument("--start-date", type=date.fromisoformat)
    parser.add_argument("--end-date", type=date.fromisoformat)
    parser.add_argument("--start-hour", help="YYYY-MM-DDTHH: process the created dates this arrival hour feeds")
    parser.add_argument("--end-hour", help="YYYY-MM-DDTHH (inclusive)")
    parser.add_argument("--late-hours", type=int, default=6,
                        help="hours after the end of a day during which its tweets may still arrive")
    parser.add_argument("--reference-uri", default=str(DEFAULT_REFERENCE),
                        help="folder with vader_lexicon.txt and stopwords_extra.txt (s3:// on EMR)")
    parser.add_argument("--summary-uri", help="where to write the JSON run summary")
    args = parser.parse_args(argv)
    if bool(args.start_date) == bool(args.start_hour):
        parser.error("give either --start-date/--end-date or --start-hour/--end-hour")
    if args.late_hours < 0:
        parser.error("--late-hours must not be negative")
    return args


def parse_hour(text: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H").replace(tzinfo=UTC)
    except ValueError:
        raise SystemExit(f"tweets.py: hour {text!r} must look like YYYY-MM-DDTHH") from None


def target_dates(args: argparse.Namespace) -> list[date]:
    """The created_date partitions to rebuild."""
    if args.start_date:
        start, end = args.start_date, args.end_date or args.start_date
    else:
        first, last = parse_hour(args.start_hour), parse_hour(args.end_hour or args.start_hour)
        # An arrival hour H can hold tweets created on any day whose window contains H.
        start = (first - timedelta(hours=24 + args.late_hours)).date() + timedelta(days=1)
        end = (last + timedelta(hours=1)).date()
        start = min(start, first.date())
    if end < start:
        raise SystemExit(f"tweets.py: end {end} is before start {start}")
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def window_hours(day: date, late_hours: int) -> list[datetime]:
    first = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(hours=1)
    return [first + timedelta(hours=i) for i in range(1 + 24 + late_hours)]


def hour_uri(lake: str, hour: datetime) -> str:
    return f"{lake.rstrip('/')}/raw/tweets/{hour:%Y/%m/%d/%H}/"


def existing_paths(spark: SparkSession, uris: list[str]) -> list[str]:
    return [uri for uri in uris if path_exists(spark, uri)]


# ---------------------------------------------------------------- parsing
def read_raw(spark: SparkSession, uris: list[str]) -> DataFrame:
    """Raw lines with their file and arrival hour (from the path, which Firehose sets on arrival)."""
    hour = F.regexp_extract("source_file", r"/raw/tweets/(\d{4}/\d{2}/\d{2}/\d{2})/", 1)
    return (spark.read.text(uris)
            .withColumn("source_file", F.input_file_name())
            .withColumn("raw_hour", F.to_timestamp(hour, "yyyy/MM/dd/HH"))
            .where(F.trim("value") != ""))


def created_at_column(raw: Column) -> Column:
    return F.coalesce(F.to_timestamp(raw, "yyyy-MM-dd'T'HH:mm:ss.SSSX"),
                      F.to_timestamp(raw, "yyyy-MM-dd'T'HH:mm:ssX"))


def classify(lines: DataFrame, late_hours: int) -> DataFrame:
    """Parse every line and give the bad ones a reason; `reason` is null for a good tweet."""
    p = F.from_json("value", RAW_SCHEMA, {"columnNameOfCorruptRecord": "_corrupt"})
    df = lines.withColumn("p", p).withColumn("created_at", created_at_column(F.col("p.data.created_at")))
    day_start = F.to_timestamp(F.to_date("created_at"))
    late_limit = day_start + F.expr(f"INTERVAL {24 + late_hours} HOURS")
    reason = (F.when(F.col("p").isNull() | F.col("p._corrupt").isNotNull(),
                     F.lit("not a JSON object of the stream message shape"))
              .when(F.col("p.data").isNull(), F.lit("no 'data' object"))
              .when(F.col("p.data.id").isNull(), F.lit("missing data.id"))
              .when(~F.col("p.data.id").rlike(r"^[0-9]{1,20}$"), F.lit("data.id is not a numeric tweet id"))
              .when(F.col("p.data.text").isNull(), F.lit("missing data.text"))
              .when(F.col("created_at").isNull(),
                    F.lit("data.created_at missing or not ISO 8601 (yyyy-MM-ddTHH:mm:ss[.SSS]Z)"))
              .when(F.col("raw_hour") >= late_limit,
                    F.lit(f"late: arrived more than {late_hours}h after the end of its created day"))
              .when(F.col("raw_hour") < day_start - F.expr("INTERVAL 1 HOURS"),
                    F.lit("data.created_at is later than the hour the tweet arrived")))
    return df.withColumn("reason", reason)


def shape(good: DataFrame) -> DataFrame:
    """Good records as rows of processed/tweets (before sentiment), one per tweet id, newest copy kept."""
    d = "p.data"
    author = F.get(F.filter("p.includes.users", lambda u: u["id"] == F.col(f"{d}.author_id")), 0)
    place = F.get(F.filter("p.includes.places", lambda pl: pl["id"] == F.col(f"{d}.geo.place_id")), 0)
    country = F.upper(place["country_code"])
    rows = good.select(
        F.col(f"{d}.id").alias("tweet_id"),
        "created_at",
        F.col(f"{d}.lang").alias("lang"),
        F.col(f"{d}.author_id").alias("author_id"),
        author["username"].alias("author_username"),
        F.col(f"{d}.text").alias("text"),
        F.coalesce(F.array_distinct(F.transform(f"{d}.entities.hashtags", lambda h: F.lower(h["tag"]))),
                   F.array().cast("array<string>")).alias("hashtags"),
        F.coalesce(F.transform(f"{d}.entities.mentions", lambda m: F.lower(m["username"])),
                   F.array().cast("array<string>")).alias("mentions"),
        F.when(country.rlike("^[A-Z]{2}$"), country).alias("country_code"),
        *[F.col(f"{d}.public_metrics.{m}").cast("bigint").alias(m)
          for m in ("retweet_count", "reply_count", "like_count", "quote_count")],
        F.date_format("created_at", "yyyy-MM-dd").alias("created_date"),
        "raw_hour", "source_file",
    )
    # The latest fetch of a tweet carries its latest public metrics.
    newest = Window.partitionBy("tweet_id").orderBy(F.col("raw_hour").desc(), F.col("source_file").desc())
    return (rows.withColumn("_n", F.row_number().over(newest)).where("_n = 1")
            .drop("_n", "raw_hour", "source_file"))


# ---------------------------------------------------------------- sentiment
def load_lexicon(spark: SparkSession, reference_uri: str) -> DataFrame:
    """VADER's lexicon (token TAB mean TAB sd TAB ratings) as (token, valence)."""
    uri = f"{reference_uri.rstrip('/')}/vader_lexicon.txt"
    lines = spark.read.text(uri)
    parts = F.split("value", "\t")
    return (lines.select(parts[0].alias("token"), parts[1].cast("double").alias("valence"))
            .where(F.col("valence").isNotNull()).dropDuplicates(["token"]))


def _in(col: Column | str, words: list[str]) -> Column:
    col = F.col(col) if isinstance(col, str) else col
    return F.coalesce(col.isin(words), F.lit(False))


def score_sentiment(tweets: DataFrame, lexicon: DataFrame, lexicon_tokens: set[str]) -> DataFrame:
    """VADER's compound score with built-in functions (see docs/tweets.md for the rules kept).

    `lexicon_tokens` is the lexicon's token set on the driver: VADER applies booster and negation rules
    only when the preceding word is not itself a lexicon word, which for these short word lists can be
    decided once here instead of joining every neighbour against the lexicon.
    """
    boost_up = [w for w in BOOST_UP if w not in lexicon_tokens]
    boost_down = [w for w in BOOST_DOWN if w not in lexicon_tokens]
    negate = [w for w in NEGATE if w not in lexicon_tokens]
    nt_in_lexicon = [w for w in lexicon_tokens if "n't" in w]
    boosters = BOOST_UP + BOOST_DOWN

    punct = r"^\p{Punct}+|\p{Punct}+$"
    words = F.filter(F.transform(F.split(F.trim("text"), r"\s+"), lambda w: F.when(
        F.length(F.regexp_replace(w, punct, "")) <= 2, w).otherwise(F.regexp_replace(w, punct, ""))),
        lambda w: w != "")
    base = (tweets.select("tweet_id", "text").withColumn("words", words)
            .withColumn("lw", F.transform("words", F.lower)))
    upper = F.size(F.filter("words", lambda w: (F.upper(w) == w) & (F.lower(w) != w)))
    base = (base.withColumn("cap_diff", (upper > 0) & (upper < F.size("words")))
            .withColumn("but", F.array_position("lw", "but") - 1))

    tok = base.select("tweet_id", "words", "lw", "cap_diff", "but", F.posexplode("words").alias("i", "w"))
    tok = tok.select(
        "tweet_id", "cap_diff", "but", "i", "w", F.lower("w").alias("t"),
        *[F.get("lw", F.col("i") - j).alias(f"p{j}") for j in (1, 2, 3)],
        *[F.get("words", F.col("i") - j).alias(f"w{j}") for j in (1, 2, 3)],
        F.get("lw", F.col("i") + 1).alias("nxt"),
    ).where(~_in("t", boosters) & ~((F.col("t") == "kind") & (F.coalesce(F.col("nxt"), F.lit("")) == "of")))
    scored = tok.join(F.broadcast(lexicon.withColumnRenamed("token", "t")), "t")
    nxt_lex = lexicon.select(F.col("token").alias("nxt"), F.lit(True).alias("nxt_in_lex"))
    scored = scored.join(F.broadcast(nxt_lex), "nxt", "left")

    # Each step is its own column: reusing the previous expression inline would grow the plan exponentially.
    v = F.col("v")
    steps = [F.when((F.col("t") == "no") & F.coalesce(F.col("nxt_in_lex"), F.lit(False)), F.lit(0.0))
             .otherwise(F.col("valence"))]
    no_before = ((F.col("p1") == "no") | (F.col("p2") == "no")
                 | ((F.col("p3") == "no") & _in("p1", ["or", "nor"])))
    steps.append(F.when(F.coalesce(no_before, F.lit(False)), F.col("valence") * N_SCALAR).otherwise(v))
    is_upper = (F.upper("w") == F.col("w")) & (F.lower("w") != F.col("w"))
    steps.append(F.when(is_upper & F.col("cap_diff"), F.when(v > 0, v + C_INCR).otherwise(v - C_INCR))
                 .otherwise(v))

    def negated(p: str) -> Column:
        return _in(p, negate) | (F.coalesce(F.col(p).contains("n't"), F.lit(False)) & ~_in(p, nt_in_lexicon))

    for j, damp in ((1, 1.0), (2, 0.95), (3, 0.9)):
        p = f"p{j}"
        raw_word = F.col(f"w{j}")
        scalar = (F.when(_in(p, boost_up), B_INCR).when(_in(p, boost_down), B_DECR).otherwise(0.0))
        scalar = F.when(v < 0, -scalar).otherwise(scalar)
        caps = (F.upper(raw_word) == raw_word) & (F.lower(raw_word) != raw_word) & F.col("cap_diff")
        scalar = F.when((scalar != 0) & F.coalesce(caps, F.lit(False)),
                        F.when(v > 0, scalar + C_INCR).otherwise(scalar - C_INCR)).otherwise(scalar)
        steps.append(v + scalar * damp)
        if j == 1:
            steps.append(F.when(negated(p), v * N_SCALAR).otherwise(v))
        elif j == 2:
            steps.append(F.when((F.col("p2") == "never") & _in("p1", ["so", "this"]), v * 1.25)
                         .when((F.col("p2") == "without") & (F.col("p1") == "doubt"), v)
                         .when(negated(p), v * N_SCALAR).otherwise(v))
        else:
            # VADER's own precedence: "so"/"this" right before the word boosts whenever a third word exists.
            steps.append(F.when(F.col("p3").isNotNull() & (((F.col("p3") == "never") & _in("p2", ["so", "this"]))
                                                           | _in("p1", ["so", "this"])), v * 1.25)
                         .when((F.col("p3") == "without") & ((F.col("p2") == "doubt") | (F.col("p1") == "doubt")), v)
                         .when(negated(p), v * N_SCALAR).otherwise(v))
    least = (F.col("p1") == "least") & ~_in("p2", ["at", "very"])
    steps.append(F.when(F.coalesce(least, F.lit(False)) & F.lit("least" not in lexicon_tokens), v * N_SCALAR)
                 .otherwise(v))
    for step in steps:
        scored = scored.withColumn("v", step)
    weight = (F.when(F.col("but") < 0, 1.0).when(F.col("i") < F.col("but"), 0.5)
              .when(F.col("i") > F.col("but"), 1.5).otherwise(1.0))
    sums = scored.groupBy("tweet_id").agg(F.sum(F.col("v") * weight).alias("_s"))

    text = F.col("text")
    ep = F.least(F.length(text) - F.length(F.regexp_replace(text, "!", "")), F.lit(4)) * 0.292
    qn = F.length(text) - F.length(F.regexp_replace(text, r"\?", ""))
    qm = F.when(qn > 3, 0.96).when(qn > 1, qn * 0.18).otherwise(0.0)
    s = F.coalesce(F.col("_s"), F.lit(0.0))
    s = F.when(s > 0, s + ep + qm).when(s < 0, s - ep - qm).otherwise(s)
    compound = F.round(F.greatest(F.lit(-1.0), F.least(F.lit(1.0), s / F.sqrt(s * s + 15))), 4)
    return (tweets.join(sums, "tweet_id", "left")
            .withColumn("sentiment", compound)
            .withColumn("sentiment_label", F.when(F.col("sentiment") >= 0.05, "positive")
                        .when(F.col("sentiment") <= -0.05, "negative").otherwise("neutral"))
            .drop("_s"))


# ---------------------------------------------------------------- daily stats
def load_stopwords(spark: SparkSession, reference_uri: str) -> DataFrame:
    """(lang, word): Spark's stop words for the tweet's language, plus English and Twitter noise for all."""
    # Straight from the JVM: pyspark.ml's wrapper would pull in numpy for a word list.
    remover = spark.sparkContext._jvm.org.apache.spark.ml.feature.StopWordsRemover

    extra = [r.value.strip().lower() for r in spark.read.text(f"{reference_uri.rstrip('/')}/stopwords_extra.txt")
             .collect() if r.value.strip() and not r.value.startswith("#")]
    common = set(remover.loadDefaultStopWords("english")) | set(extra)
    rows = {(OTHER_LANG, w) for w in common}
    for code, language in STOPWORD_LANGUAGES.items():
        rows |= {(code, w.lower()) for w in remover.loadDefaultStopWords(language)}
        rows |= {(code, w) for w in common}
    return spark.createDataFrame(sorted(rows), "lang string, word string")


def top_n(df: DataFrame, keys: list[str], item: str, n: int = 10) -> DataFrame:
    """The n most frequent `item`s per key, most frequent first (ties: alphabetical)."""
    counts = df.groupBy(*keys, item).count()
    ranked = counts.withColumn("_r", F.row_number().over(
        Window.partitionBy(*keys).orderBy(F.col("count").desc(), F.col(item))))
    return (ranked.where(F.col("_r") <= n).groupBy(*keys)
            .agg(F.sort_array(F.collect_list(F.struct("_r", item))).alias("_top"))
            .select(*keys, F.transform("_top", lambda x: x[item]).alias(f"top_{item}s")))


def daily_stats(tweets: DataFrame, stopwords: DataFrame) -> DataFrame:
    keys = ["date", "country_code"]
    t = tweets.withColumnRenamed("created_date", "date")
    base = t.groupBy(*keys).agg(F.count("*").alias("tweet_count"), F.avg("sentiment").alias("mean_sentiment"))
    tags = top_n(t.select(*keys, F.explode("hashtags").alias("hashtag")), keys, "hashtag")
    clean = F.regexp_replace(F.lower("text"), r"https?://\S+|www\.\S+|[@#][\p{L}\p{N}_]+|&amp;|&lt;|&gt;", " ")
    words = (t.select(*keys, F.when(F.col("lang").isin(list(STOPWORD_LANGUAGES)), F.col("lang"))
                      .otherwise(F.lit(OTHER_LANG)).alias("lang"),
                      F.explode(F.split(clean, r"[^\p{L}\p{M}\p{N}']+")).alias("word"))
             .withColumn("word", F.regexp_replace("word", "^'+|'+$", ""))
             .where((F.length("word") >= 2) & ~F.col("word").rlike(r"^[\p{N}']+$")))
    words = words.join(F.broadcast(stopwords), ["lang", "word"], "left_anti")
    top_words = top_n(words, keys, "word")
    empty = F.array().cast("array<string>")
    return (base.join(tags, keys, "left").join(top_words, keys, "left")
            .select("country_code", F.col("tweet_count").cast("bigint"),
                    F.coalesce("top_hashtags", empty).alias("top_hashtags"),
                    F.coalesce("top_words", empty).alias("top_words"),
                    F.col("mean_sentiment").cast("double"), "date"))


# ---------------------------------------------------------------- one date
def process_date(spark: SparkSession, lake: str, day: date, late_hours: int, lexicon: DataFrame,
                 lexicon_tokens: set[str], stopwords: DataFrame) -> dict:
    lake = lake.rstrip("/")
    uris = existing_paths(spark, [hour_uri(lake, h) for h in window_hours(day, late_hours)])
    own_hours = {hour_uri(lake, h) for h in window_hours(day, 0)[1:]}
    if not uris:
        return {"status": summary.NO_INPUT, "rows_read": 0, "rows_written": 0, "rows_quarantined": 0,
                "error": None, "partitions": {}}
    iso = day.isoformat()
    lines = classify(read_raw(spark, uris), late_hours).cache()
    try:
        own = F.date_format("raw_hour", "yyyy-MM-dd") == iso
        belongs = F.col("reason").isNull() & (F.to_date("created_at") == F.lit(iso).cast("date"))
        counts = lines.agg(
            F.sum(F.when(belongs, 1).otherwise(0)).alias("good"),
            F.sum(F.when(F.col("reason").isNotNull() & own, 1).otherwise(0)).alias("bad"),
            F.sum(F.when(own, 1).otherwise(0)).alias("own"),
        ).first()
        tweets = score_sentiment(shape(lines.where(belongs)), lexicon, lexicon_tokens).cache()
        written = tweets.count()
        out_rows = max(1, math.ceil(written / 1_000_000))
        (tweets.select(*TWEET_COLUMNS, "created_date").coalesce(out_rows)
         .write.mode("overwrite").partitionBy("created_date").parquet(f"{lake}/processed/tweets"))
        (daily_stats(tweets, stopwords).coalesce(1)
         .write.mode("overwrite").partitionBy("date").parquet(f"{lake}/processed/tweet_daily_stats"))
        quarantine = (lines.where(F.col("reason").isNotNull() & own)
                      .select(F.col("value").alias("line"), "source_file", "reason",
                              F.date_format("raw_hour", "yyyy-MM-dd").alias("raw_date"),
                              F.date_format("raw_hour", "HH").alias("raw_hour")))
        if counts["bad"]:
            (quarantine.coalesce(1).write.mode("overwrite").partitionBy("raw_date", "raw_hour")
             .json(f"{lake}/quarantine/tweets"))
        tweets.unpersist()
        read_hours = sorted(u for u in uris if u in own_hours)
        return {"status": summary.COMPLETED, "rows_read": int(counts["own"]), "rows_written": int(written),
                "rows_quarantined": int(counts["bad"]), "rows_matched": int(counts["good"]),
                "duplicates_removed": int(counts["good"]) - int(written), "error": None,
                "raw_hours_read": len(uris), "partitions": {
                    "tweets": [f"created_date={iso}"] if written else [],
                    "tweet_daily_stats": [f"date={iso}"] if written else [],
                    "quarantine_tweets": [f"raw_date={iso}/raw_hour={u.rstrip('/')[-2:]}" for u in read_hours]
                    if counts["bad"] else []}}
    finally:
        lines.unpersist()


def run(spark: SparkSession, args: argparse.Namespace) -> dict:
    clock = summary.Clock()
    lexicon = load_lexicon(spark, args.reference_uri).cache()
    lexicon_tokens = {r.token for r in lexicon.select("token").collect()}
    stopwords = load_stopwords(spark, args.reference_uri).cache()
    dates: dict[str, dict] = {}
    for day in target_dates(args):
        try:
            dates[day.isoformat()] = process_date(spark, args.lake, day, args.late_hours, lexicon,
                                                  lexicon_tokens, stopwords)
        except Exception as exc:  # one bad date must not stop the others; the summary and exit code tell
            dates[day.isoformat()] = summary.failed_entry(f"{type(exc).__name__}: {exc}"[:2000])
    return summary.build(JOB, spark, clock, dates)


def main(argv: list[str] | None = None) -> int:
    return summary.run_with_summary("covid19-lake-tweets", run, parse_args(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
