"""Lambda entry point: the job table's DynamoDB stream -> one message per status transition, per destination.

Handler: ``lambdas.notifier.app.handler``. The event source mapping must enable ``ReportBatchItemFailures``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError
from aws_lambda_powertools.utilities.parameters import clear_caches as clear_parameter_caches

from .config import ConfigurationError, Settings, load_settings
from .delivery import DeliveryFailed, post_json
from .message import build_notification, reported_by_run_item, scrub
from .render import RENDERERS
from .transitions import Transition, detect_transition
from .webhooks import fetch_secret_string, parse_webhooks, select_destinations

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME") or "covid19-lake-notifier")
_KNOWN_SECRETS: set[str] = set()


class _RedactSecrets(logging.Filter):
    """Last line of defence: whatever a log record says, the webhook URLs in use are masked out of it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = scrub(record.msg, _KNOWN_SECRETS) or ""
        if record.args:
            record.args = tuple(scrub(a, _KNOWN_SECRETS) if isinstance(a, str) else a for a in record.args) \
                if isinstance(record.args, tuple) else record.args
        for name, value in list(vars(record).items()):
            if isinstance(value, str) and name not in {"msg", "name", "levelname", "pathname", "filename"}:
                setattr(record, name, scrub(value, _KNOWN_SECRETS))
        return True


logger.addFilter(_RedactSecrets())

# Time kept back from the Lambda timeout so a slow webhook fails its record instead of the whole invocation.
DEADLINE_MARGIN_SECONDS = 3.0
IDEMPOTENCY_KEY_PREFIX = "covid19-lake-notifier#delivery"


class NotificationNotDelivered(Exception):
    """At least one destination could not be reached; the record is retried (only those destinations post)."""


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    deliver: Callable[..., dict[str, Any]]
    idempotency_config: IdempotencyConfig | None


def _deliver(*, delivery: dict[str, str], body: dict[str, Any], url: str, settings: Settings,
             deadline: float | None) -> dict[str, Any]:
    """One destination, one transition. Powertools Idempotency stores the returned dict under delivery.key."""
    outcome = post_json(url, body, destination=delivery["destination"], policy=settings.retry, deadline=deadline)
    return outcome.as_dict()


def _mark_replayed(response: Any, _record: Any) -> Any:
    # Called by Powertools when the store already holds a completed delivery for this key.
    if isinstance(response, dict):
        return {**response, "replayed": True}
    return response


@lru_cache(maxsize=4)
def _runtime(settings: Settings) -> Runtime:
    """Built once per container (per distinct settings): the boto3 client and decorator are reused."""
    if settings.idempotency_disabled:
        return Runtime(settings, _deliver, None)
    if not settings.idempotency_table_name:
        raise ConfigurationError(
            "IDEMPOTENCY_TABLE_NAME is not set: expected the DynamoDB table (partition key 'id', TTL attribute "
            "'expiration') that stops a retried batch from posting twice; POWERTOOLS_IDEMPOTENCY_DISABLED=true "
            "turns this off for local experiments only"
        )
    config = IdempotencyConfig(
        event_key_jmespath="key",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=settings.idempotency_ttl_seconds,
        response_hook=_mark_replayed,
    )
    store = DynamoDBPersistenceLayer(table_name=settings.idempotency_table_name)
    deliver = idempotent_function(
        _deliver,
        data_keyword_argument="delivery",
        persistence_store=store,
        config=config,
        key_prefix=IDEMPOTENCY_KEY_PREFIX,
    )
    return Runtime(settings, deliver, config)


def clear_caches() -> None:
    """Forget the cached runtime and secret (tests; a warm container never needs it)."""
    _runtime.cache_clear()
    clear_parameter_caches()


def _deadline(context: Any) -> float | None:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return None
    return time.monotonic() + remaining() / 1000.0 - DEADLINE_MARGIN_SECONDS


def _fair_share(deadline: float | None, destinations_left: int) -> float | None:
    """This destination's slice of the time left, so one hanging webhook cannot starve the others."""
    if deadline is None:
        return None
    now = time.monotonic()
    return now + max(deadline - now, 0.0) / max(destinations_left, 1)


def handle_record(record: DynamoDBRecord, runtime: Runtime, context: Any = None,
                  held_jobs: set[tuple[Any, Any]] | None = None) -> str:
    """Post one record's transition to every destination; raise when any destination needs a retry.

    ``held_jobs`` collects the jobs whose transition failed earlier in this batch: their later transitions
    are failed too, unposted, so that after the retry a channel still reads SUBMITTED, RUNNING, COMPLETED
    in that order (the stream redelivers from the first failed record anyway).
    """
    transition = detect_transition(record.raw_event)
    if transition is None:
        logger.debug("No status transition; not notified",
                     extra={"event_id": record.event_id, "event_name": str(record.event_name)})
        return "no-transition"
    if reported_by_run_item(transition.image):
        # A date of a multi-date run: the run item's own transitions report it, with every failed date.
        logger.debug("Date of a multi-date run; its run item reports it", extra={
            "event_id": record.event_id, "job_date": transition.image.get("job_date"),
            "run_item": transition.image.get("run_item")})
        return "reported-by-run-item"
    job_key = (transition.image.get("job_date"), transition.image.get("job_name"))
    if held_jobs is not None and job_key in held_jobs:
        raise NotificationNotDelivered(
            f"held back: an earlier transition of {job_key[1]} for {job_key[0]} in this batch was not delivered"
        )
    try:
        return _notify(transition, runtime, context)
    except Exception:
        if held_jobs is not None:
            held_jobs.add(job_key)
        raise


def _notify(transition: Transition, runtime: Runtime, context: Any) -> str:
    job = {"job_name": transition.image.get("job_name"), "job_date": transition.image.get("job_date"),
           "status": transition.status, "previous_status": transition.previous_status,
           "event_id": transition.event_id}
    settings = runtime.settings
    webhooks, ignored = parse_webhooks(fetch_secret_string(settings), secret_name=settings.webhooks_secret_name or "",
                                       allow_loopback_http=settings.allow_loopback_http)
    _KNOWN_SECRETS.update(webhooks.values())
    if ignored:
        logger.warning("Webhooks secret has keys that name no destination", extra={"ignored_keys": ignored})
    targets = select_destinations(webhooks, settings.destinations)
    if not targets:
        logger.warning("No destination configured; transition not posted", extra=job)
        return "no-destination"
    notification = build_notification(
        transition,
        airflow_base_url=settings.airflow_base_url,
        console_region=settings.console_region,
        secrets=webhooks.values(),
    )
    deadline = _deadline(context)
    failures: list[str] = []
    for index, (name, url) in enumerate(targets.items()):
        try:
            result = runtime.deliver(
                delivery={"key": f"{transition.idempotency_key}|{name}", "destination": name},
                body=RENDERERS[name](notification),
                url=url,
                settings=settings,
                deadline=_fair_share(deadline, len(targets) - index),
            )
        except DeliveryFailed as exc:
            failures.append(str(exc))
            logger.error("Delivery failed; the record will be retried", extra={**job, "destination": name,
                                                                                "reason": str(exc)})
            continue
        except IdempotencyAlreadyInProgressError:
            failures.append(f"{name}: another invocation is posting this transition right now")
            logger.warning("Delivery in progress elsewhere; the record will be retried",
                           extra={**job, "destination": name})
            continue
        if result.get("replayed"):
            logger.info("Already posted; not sent again", extra={**job, "destination": name})
        elif result.get("outcome") == "delivered":
            logger.info("Posted", extra={**job, **result})
        else:
            # A 4xx other than 408/429 means the webhook refuses this body: retrying cannot help, so the
            # refusal is recorded (idempotency store + this log) and the record is not failed.
            logger.error("Webhook refused the message; not retried", extra={**job, **result})
    if failures:
        raise NotificationNotDelivered("; ".join(failures))
    return "notified"


def _process(event: dict[str, Any], context: Any) -> dict[str, Any]:
    runtime = _runtime(load_settings(os.environ))
    if runtime.idempotency_config is not None:
        # In-progress markers expire with this invocation, so a crash mid-post does not block the retry.
        # A direct call without a context must not inherit the previous invocation's.
        runtime.idempotency_config.register_lambda_context(
            context if hasattr(context, "get_remaining_time_in_millis") else None)
    processor = BatchProcessor(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)

    held_jobs: set[tuple[Any, Any]] = set()

    def record_handler(record: DynamoDBRecord, lambda_context: Any = None) -> str:
        return handle_record(record, runtime, lambda_context, held_jobs)

    response = process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                        context=context)
    for failed, (exc_type, exc, _tb) in zip(processor.fail_messages, processor.exceptions, strict=False):
        logger.error("Record not processed; reported in batchItemFailures", extra={
            "event_id": getattr(failed, "event_id", None),
            "sequence_number": getattr(getattr(failed, "dynamodb", None), "sequence_number", None),
            "error_type": getattr(exc_type, "__name__", str(exc_type)),
            "error": str(exc),
        })
    return response


_process_with_context = logger.inject_lambda_context(clear_state=True)(_process)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point; returns ``{"batchItemFailures": [{"itemIdentifier": <sequence number>}, ...]}``."""
    if context is None:  # a direct call (a local run or a test) has no Lambda context to log
        return _process(event, None)
    return _process_with_context(event, context)
