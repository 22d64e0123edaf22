"""SYNTHETIC COVID-19 tweets for the local X API stand-in (local/x_api.py), generated from a seed.

Real tweets cannot be redistributed, so the local stack serves made-up ones. Every tweet says so:

- its author's ``username`` starts with ``synth_`` and the display ``name`` with ``Synthetic``;
- its ``source`` field is ``SOURCE_LABEL`` ("covid19-lake synthetic data");
- its text ends with ``SYNTHETIC_LINK`` (https://synthetic.invalid, a reserved top-level domain), which
  the tweets job strips before counting words, so the label does not crowd the top words.

The same arguments give the same corpus, byte for byte (``random.Random(seed)`` only, no clock, no
hash randomisation). What is in it, to exercise the pipeline: several languages (en, es, it, fr, de,
pt) and countries (places with X's shape), hashtags, mentions of other synthetic users, public metrics,
tweets without a place, retweets (``-is:retweet`` drops them), tweets the production query does not
match, a few tweets whose place no longer exists (the API answers a partial error) and a few malformed
lines for the filtered stream to send. Duplicates come from the stand-in: search and stream serve the
same tweets, and ``XApiStandIn(page_overlap=...)`` repeats tweets across search pages.

Volume follows the pandemic's growth over the days (and each country's own take-off day), so the weekly
tweets-vs-cases join has something to show.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

SOURCE_LABEL = "covid19-lake synthetic data"
SYNTHETIC_LINK = "https://synthetic.invalid"
TWITTER_EPOCH_MS = 1288834974657
DEMO_START = date(2020, 3, 1)
DEMO_END = date(2020, 4, 1)  # inclusive: the demo's JHU dates end on 2020-04-01

# (city, full_name, country, country_code, language of most local authors, take-off day in March 2020)
CITIES = [
    ("Bergamo", "Bergamo, Lombardia", "Italia", "IT", "it", 0),
    ("Milano", "Milano, Lombardia", "Italia", "IT", "it", 0),
    ("Roma", "Roma, Lazio", "Italia", "IT", "it", 2),
    ("Madrid", "Madrid, España", "España", "ES", "es", 6),
    ("Barcelona", "Barcelona, España", "España", "ES", "es", 7),
    ("Paris", "Paris, France", "France", "FR", "fr", 7),
    ("Lyon", "Lyon, France", "France", "FR", "fr", 9),
    ("Berlin", "Berlin, Deutschland", "Deutschland", "DE", "de", 9),
    ("München", "München, Bayern", "Deutschland", "DE", "de", 9),
    ("London", "London, England", "United Kingdom", "GB", "en", 11),
    ("Manchester", "Manchester, England", "United Kingdom", "GB", "en", 13),
    ("Seattle", "Seattle, WA", "United States", "US", "en", 3),
    ("New York", "Manhattan, NY", "United States", "US", "en", 12),
    ("Los Angeles", "Los Angeles, CA", "United States", "US", "en", 14),
    ("Chicago", "Chicago, IL", "United States", "US", "en", 15),
    ("Toronto", "Toronto, Ontario", "Canada", "CA", "en", 14),
    ("Lisboa", "Lisboa, Portugal", "Portugal", "PT", "pt", 14),
    ("São Paulo", "São Paulo, Brasil", "Brasil", "BR", "pt", 16),
    ("Rio de Janeiro", "Rio de Janeiro, Brasil", "Brasil", "BR", "pt", 18),
    ("Ciudad de México", "Ciudad de México, México", "México", "MX", "es", 19),
    ("Mumbai", "Mumbai, India", "India", "IN", "en", 20),
    ("New Delhi", "New Delhi, India", "India", "IN", "en", 21),
]

KEYWORDS = {
    "en": ["covid", "COVID-19", "Covid19", "coronavirus", "the coronavirus", "SARS-CoV-2"],
    "es": ["el covid", "COVID-19", "el coronavirus", "coronavirus"],
    "it": ["il covid", "COVID-19", "il coronavirus", "coronavirus"],
    "fr": ["le covid", "COVID-19", "le coronavirus", "coronavirus"],
    "de": ["Corona", "COVID-19", "das Coronavirus", "coronavirus"],
    "pt": ["a covid", "COVID-19", "o coronavírus", "coronavirus"],
}
# {kw}: a keyword of the query; {city}: the author's city; {n}: a small number. Positive, negative and
# neutral sentences, so sentiment varies by country and day.
SENTENCES = {
    "en": [
        "{kw} cases keep rising in {city}. Please stay home and stay safe",
        "So grateful for the nurses and doctors fighting {kw} in {city}",
        "Schools closed in {city} because of {kw}. Worried about the kids",
        "Day {n} of lockdown. Washing hands, keeping distance, hoping {kw} slows down",
        "Shelves empty again, people panic buying over {kw}. This is terrible",
        "Good news: more people recovered from {kw} in {city} today",
        "Awful numbers today, {kw} deaths up again",
        "Great to see neighbours helping each other during {kw}",
        "Testing for {kw} is still too slow in {city}",
    ],
    "es": [
        "Los casos de {kw} siguen subiendo en {city}. Quédate en casa",
        "Gracias a los sanitarios que luchan contra {kw} en {city}",
        "Día {n} de confinamiento por {kw}. Mucho ánimo a todos",
        "Malas noticias hoy, más muertes por {kw}",
        "Aplausos a las ocho para los médicos que combaten {kw}",
    ],
    "it": [
        "Restiamo a casa, {kw} non è finito. Forza {city}",
        "Grazie a medici e infermieri che combattono {kw}",
        "Giorno {n} di quarantena per {kw}, andrà tutto bene",
        "Numeri terribili oggi a {city}, {kw} continua a crescere",
    ],
    "fr": [
        "Confinement jour {n} : {kw} progresse encore à {city}",
        "Merci aux soignants qui se battent contre {kw}",
        "Restez chez vous, {kw} circule toujours à {city}",
    ],
    "de": [
        "Die Fälle von {kw} steigen weiter in {city}. Bleibt zuhause",
        "Danke an alle Pflegekräfte im Kampf gegen {kw}",
        "Tag {n} im Homeoffice wegen {kw}, alles gut soweit",
    ],
    "pt": [
        "Fique em casa, {kw} ainda está se espalhando em {city}",
        "Obrigado aos profissionais de saúde que enfrentam {kw}",
        "Dia {n} de quarentena por causa de {kw}",
    ],
}
# Sentences without any keyword of the production query: matched by none of its terms.
OFF_TOPIC = {
    "en": ["Working from home again today", "Baking bread like everyone else", "Flu season is rough this year"],
    "es": ["Otra vez teletrabajo hoy", "Haciendo pan en casa"],
    "it": ["Ancora smart working oggi", "Pane fatto in casa"],
    "fr": ["Encore du télétravail aujourd'hui"],
    "de": ["Heute wieder Homeoffice"],
    "pt": ["Mais um dia de home office"],
}
HASHTAGS = {
    "en": ["COVID19", "coronavirus", "StayHome", "StayHomeSaveLives", "FlattenTheCurve", "SocialDistancing",
           "lockdown"],
    "es": ["COVID19", "coronavirus", "QuedateEnCasa", "EsteVirusLoParamosUnidos", "cuarentena"],
    "it": ["COVID19", "coronavirus", "IoRestoACasa", "andràtuttobene", "quarantena"],
    "fr": ["COVID19", "coronavirus", "RestezChezVous", "confinement"],
    "de": ["COVID19", "Corona", "BleibtZuhause", "WirBleibenZuhause"],
    "pt": ["COVID19", "coronavirus", "FiqueEmCasa", "quarentena"],
}
LANGUAGES = list(SENTENCES)
FIRST_NAMES = ["Reader", "Nurse", "Teacher", "Baker", "Cyclist", "Student", "Neighbour", "Doctor", "Driver",
               "Gardener", "Writer", "Runner"]
DESK_ACCOUNTS = ["synth_health_desk", "synth_city_news", "synth_science_daily"]
# Share of tweets with a place (real geotagging is rarer; the demo needs countries to show).
PLACED_SHARE = 0.35
RETWEET_SHARE = 0.12
OFF_TOPIC_SHARE = 0.06
MISSING_PLACE_SHARE = 0.004
MALFORMED_SHARE = 0.005

_ENTITY = re.compile(r"(?P<url>https?://\S+)|#(?P<tag>\w+)|@(?P<user>\w+)")


def snowflake(moment: datetime, sequence: int, worker: int = 19) -> int:
    """An X id for a tweet created at ``moment``: ids grow with time, as since_id needs."""
    ms = int(moment.timestamp() * 1000) - TWITTER_EPOCH_MS
    return (ms << 22) | ((worker & 0x3FF) << 12) | (sequence & 0xFFF)


def snowflake_time(tweet_id: int | str) -> datetime:
    return datetime.fromtimestamp(((int(tweet_id) >> 22) + TWITTER_EPOCH_MS) / 1000, UTC)


def iso_ms(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def place_id(name: str) -> str:
    """A stable 16-hex-digit id in X's place-id shape (made up, not X's id of that city)."""
    return hashlib.sha256(f"covid19-lake synthetic place {name}".encode()).hexdigest()[:16]


def entities(text: str, user_ids: Mapping[str, str] | None = None) -> dict[str, list[dict[str, Any]]]:
    """hashtags, mentions (with the user's id when known) and urls with start/end offsets (code points),
    as the API reports them."""
    found: dict[str, list[dict[str, Any]]] = {}
    for match in _ENTITY.finditer(text):
        start, end = match.span()
        if match.group("url"):
            url = match.group("url")
            found.setdefault("urls", []).append({"start": start, "end": end, "url": url, "expanded_url": url,
                                                 "display_url": url.split("://", 1)[1]})
        elif match.group("tag"):
            found.setdefault("hashtags", []).append({"start": start, "end": end, "tag": match.group("tag")})
        else:
            mention = {"start": start, "end": end, "username": match.group("user")}
            if user_ids and match.group("user") in user_ids:
                mention["id"] = user_ids[match.group("user")]
            found.setdefault("mentions", []).append(mention)
    return found


@dataclass
class Corpus:
    """Tweets (ascending ids), their users and places, and the stream's malformed lines."""

    seed: int
    tweets: list[dict[str, Any]]
    users: dict[str, dict[str, Any]]
    places: dict[str, dict[str, Any]]
    # Malformed lines the filtered stream sends right after the tweet with that id.
    stream_noise: dict[str, list[bytes]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        langs: dict[str, int] = {}
        countries: dict[str, int] = {}
        for tweet in self.tweets:
            langs[tweet["lang"]] = langs.get(tweet["lang"], 0) + 1
            place = self.places.get((tweet.get("geo") or {}).get("place_id", ""))
            if place:
                countries[place["country_code"]] = countries.get(place["country_code"], 0) + 1
        return {
            "seed": self.seed, "tweets": len(self.tweets), "users": len(self.users), "places": len(self.places),
            "first_created_at": self.tweets[0]["created_at"] if self.tweets else None,
            "last_created_at": self.tweets[-1]["created_at"] if self.tweets else None,
            "retweets": sum(1 for t in self.tweets if t.get("referenced_tweets")),
            "missing_places": sum(1 for t in self.tweets
                                  if t.get("geo") and t["geo"]["place_id"] not in self.places),
            "malformed_stream_lines": sum(len(v) for v in self.stream_noise.values()),
            "languages": dict(sorted(langs.items())), "countries": dict(sorted(countries.items())),
        }


def _users(rng: random.Random, per_city: int) -> list[dict[str, Any]]:
    users = []
    number = 1000
    for desk in DESK_ACCOUNTS:
        number += 1
        users.append({"id": str(number), "username": desk, "name": f"Synthetic {desk[6:].replace('_', ' ').title()}",
                      "verified": True, "description": f"{SOURCE_LABEL}: not a real account",
                      "created_at": "2015-01-01T00:00:00.000Z", "protected": False, "_city": None,
                      "_lang": "en"})
    for city, _full, country, _code, lang, _day in CITIES:
        for _ in range(per_city):
            number += 1
            role = rng.choice(FIRST_NAMES)
            handle = re.sub(r"\W", "", city.lower().encode("ascii", "ignore").decode())[:8]
            user = {"id": str(number), "username": f"synth_{handle}_{number}", "name": f"Synthetic {role} {number}",
                    "verified": rng.random() < 0.03, "description": f"{SOURCE_LABEL}: not a real account",
                    "created_at": f"{rng.randint(2009, 2019)}-{rng.randint(1, 12):02d}-01T00:00:00.000Z",
                    "protected": False, "_city": city,
                    "_lang": lang if rng.random() < 0.85 else rng.choice(LANGUAGES)}
            if rng.random() < 0.7:
                user["location"] = f"{city}, {country}"
            users.append(user)
    return users


def _metrics(rng: random.Random) -> dict[str, int]:
    likes = min(50_000, int(3 * (rng.paretovariate(1.2) - 1)))
    return {"retweet_count": int(likes * rng.uniform(0.05, 0.4)), "reply_count": int(likes * rng.uniform(0, 0.1)),
            "like_count": likes, "quote_count": int(likes * rng.uniform(0, 0.03)),
            "impression_count": likes * rng.randint(20, 60) + rng.randint(10, 500)}


def _daily_weight(day_index: int, takeoff: int) -> float:
    # A logistic curve per city: little talk before its take-off day, a plateau after.
    return 0.15 + 1.0 / (1.0 + math.exp(-(day_index - takeoff) / 2.5))


def _text(rng: random.Random, lang: str, city: str, mention: str | None, off_topic: bool) -> str:
    if off_topic:
        sentence = rng.choice(OFF_TOPIC[lang])
        tags = [t for t in HASHTAGS[lang] if "covid" not in t.lower() and "corona" not in t.lower()]
        tags = rng.sample(tags, rng.randint(0, 1))
    else:
        sentence = rng.choice(SENTENCES[lang]).format(kw=rng.choice(KEYWORDS[lang]), city=city,
                                                      n=rng.randint(2, 30))
        tags = rng.sample(HASHTAGS[lang], rng.choice([0, 1, 1, 2, 2, 3]))
    if rng.random() < 0.08:
        sentence += "!!"
    parts = [sentence, *(f"#{t}" for t in tags)]
    if mention:
        parts.append(f"@{mention}")
    parts.append(SYNTHETIC_LINK)
    return " ".join(parts)


def generate(seed: int = 19, start: date | datetime = DEMO_START, end: date | datetime = DEMO_END, *,
             tweets_per_day: int = 300) -> Corpus:
    """The corpus for ``start``..``end``: whole UTC days (inclusive) for dates, or the exact range
    ``[start, end)`` for datetimes (e.g. the last hour, for tests). ``tweets_per_day`` is the plateau
    volume; early days have fewer."""
    rng = random.Random(seed)
    if isinstance(start, datetime):
        first, stop = start.astimezone(UTC), end.astimezone(UTC)  # type: ignore[union-attr]
    else:
        first = datetime(start.year, start.month, start.day, tzinfo=UTC)
        stop = datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1)
    if stop <= first:
        raise ValueError(f"the corpus needs end after start, got {start} .. {end}")
    users = _users(rng, per_city=12)
    by_city: dict[str, list[dict[str, Any]]] = {}
    for user in users:
        by_city.setdefault(user["_city"], []).append(user)
    places = {}
    for city, full_name, country, code, _lang, _day in CITIES:
        places[place_id(city)] = {"id": place_id(city), "full_name": full_name, "name": city, "country": country,
                                  "country_code": code, "place_type": "city"}
    usernames = [u["username"] for u in users]
    user_ids = {u["username"]: u["id"] for u in users}

    tweets: list[dict[str, Any]] = []
    noise: dict[str, list[bytes]] = {}
    recent: list[dict[str, Any]] = []  # originals a retweet can point at
    day_start = first
    sequence, last_moment = 0, None
    while day_start < stop:
        day_end = min(stop, datetime(day_start.year, day_start.month, day_start.day, tzinfo=UTC) + timedelta(days=1))
        span = (day_end - day_start).total_seconds()
        weights = [_daily_weight((day_start.date() - DEMO_START).days, c[5]) for c in CITIES]
        plateau = sum(_daily_weight(10_000, c[5]) for c in CITIES)
        count = max(1, round(tweets_per_day * (span / 86400) * sum(weights) / plateau))
        moments = sorted(day_start + timedelta(milliseconds=int(rng.uniform(0, span * 1000))) for _ in range(count))
        for moment in moments:
            city_row = rng.choices(CITIES, weights)[0]
            city = city_row[0]
            author = rng.choice(by_city[city]) if rng.random() < 0.93 else rng.choice(by_city[None])
            lang = author["_lang"]
            # Ids ascend with time; tweets within the same millisecond get the next sequence number.
            sequence = sequence + 1 if moment == last_moment else 0
            last_moment = moment
            tweet_id = str(snowflake(moment, sequence))
            retweet_of = recent[rng.randrange(len(recent))] if recent and rng.random() < RETWEET_SHARE else None
            if retweet_of is not None:
                original_author = next(u for u in users if u["id"] == retweet_of["author_id"])
                text = f"RT @{original_author['username']}: {retweet_of['text']}"
                lang = retweet_of["lang"]
                metrics = {"retweet_count": retweet_of["public_metrics"]["retweet_count"], "reply_count": 0,
                           "like_count": 0, "quote_count": 0, "impression_count": 0}
            else:
                mention = rng.choice(usernames) if rng.random() < 0.3 else None
                text = _text(rng, lang, city, mention, off_topic=rng.random() < OFF_TOPIC_SHARE)
                metrics = _metrics(rng)
            tweet: dict[str, Any] = {
                "id": tweet_id, "text": text, "edit_history_tweet_ids": [tweet_id], "created_at": iso_ms(moment),
                "lang": lang, "author_id": author["id"], "conversation_id": tweet_id, "possibly_sensitive": False,
                "source": SOURCE_LABEL, "public_metrics": metrics, "entities": entities(text, user_ids),
            }
            if not tweet["entities"]:
                del tweet["entities"]
            if retweet_of is not None:
                tweet["referenced_tweets"] = [{"type": "retweeted", "id": retweet_of["id"]}]
            elif rng.random() < PLACED_SHARE:
                tweet["geo"] = {"place_id": place_id(city)}
            elif rng.random() < MISSING_PLACE_SHARE:
                tweet["geo"] = {"place_id": "0000" + tweet_id[-12:]}  # a place X no longer has
            tweets.append(tweet)
            if retweet_of is None:
                recent = [*recent[-199:], tweet]
            if rng.random() < MALFORMED_SHARE:
                line = json.dumps({"data": tweet}, separators=(",", ":")).encode()
                noise[tweet_id] = [line[: rng.randint(10, len(line) - 10)]]
        day_start = day_end
    for user in users:
        for key in ("_city", "_lang"):
            user.pop(key)
    return Corpus(seed=seed, tweets=tweets, users={u["id"]: u for u in users}, places=places, stream_noise=noise)


def window(corpus: Corpus, start: datetime, end: datetime) -> Iterable[dict[str, Any]]:
    """Tweets created in ``[start, end)``."""
    low, high = iso_ms(start), iso_ms(end)
    return (t for t in corpus.tweets if low <= t["created_at"] < high)


def main(argv: list[str] | None = None) -> None:  # pragma: no cover - a look at the data
    import argparse

    parser = argparse.ArgumentParser(description="Summarise (or dump) the synthetic tweets corpus")
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--tweets-per-day", type=int, default=300)
    parser.add_argument("--dump", action="store_true", help="print every tweet as a JSON line")
    opts = parser.parse_args(argv)
    corpus = generate(opts.seed, tweets_per_day=opts.tweets_per_day)
    if opts.dump:
        for tweet in corpus.tweets:
            print(json.dumps(tweet, ensure_ascii=False))
    else:
        print(json.dumps(corpus.summary(), indent=1, ensure_ascii=False))


if __name__ == "__main__":  # pragma: no cover
    main()
