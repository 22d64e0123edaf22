"""Tweets pipeline: X API search and filtered stream -> one JSON line per tweet -> Firehose -> raw/tweets/.

Modules: `config` (runtime settings), `records` (message shape), `search` (X API v2 recent search with
rate-limit handling), `checkpoint` (since_id state), `firehose` (batch writer and local sink), `ingest`
(the `tweets_ingest` task) and `stream` (the long-running filtered-stream producer).
"""
