"""Parse-time settings: the sensor mode, the step time limit behind the sensors' attempts, catchup."""

from __future__ import annotations

from pathlib import Path

import pytest

from covid19_lake.config import ParseTimeSettings
from covid19_lake.spark_pipeline import step_sensor_kwargs


def test_defaults_defer_the_step_sensors_for_six_hours_and_keep_catchup_off():
    settings = ParseTimeSettings.from_env({})
    assert settings.sensor_mode == "deferrable" and settings.jhu_catchup is False
    kwargs = step_sensor_kwargs(settings)
    assert kwargs["deferrable"] is True and kwargs["mode"] == "poke" and kwargs["poke_interval"] == 60
    assert kwargs["timeout"] == 6 * 3600
    # The provider's default of 60 attempts would give up after an hour.
    assert kwargs["max_attempts"] == 360


def test_max_attempts_cover_the_configured_step_time_limit():
    settings = ParseTimeSettings.from_env({"COVID19_LAKE_SENSOR_POKE_SECONDS": "7",
                                           "COVID19_LAKE_STEP_TIMEOUT_MINUTES": "100"})
    assert settings.step_sensor_attempts == 858  # ceil(6000 / 7)
    assert settings.step_sensor_attempts * 7 >= 6000 > (settings.step_sensor_attempts - 1) * 7


def test_poke_mode_keeps_the_sensors_in_their_worker():
    kwargs = step_sensor_kwargs(ParseTimeSettings.from_env({"COVID19_LAKE_SENSOR_MODE": "poke"}))
    assert kwargs["deferrable"] is False and kwargs["mode"] == "poke"


def test_reschedule_is_refused_with_the_reason():
    with pytest.raises(ValueError, match=r"race the Airflow 3\.3 scheduler"):
        ParseTimeSettings.from_env({"COVID19_LAKE_SENSOR_MODE": "reschedule"})
    with pytest.raises(ValueError, match="one of"):
        ParseTimeSettings.from_env({"COVID19_LAKE_SENSOR_MODE": "sometimes"})
    with pytest.raises(ValueError, match="at least 1"):
        ParseTimeSettings.from_env({"COVID19_LAKE_SENSOR_POKE_SECONDS": "0.5"})


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("1", True), ("False", False), ("", False)])
def test_catchup_is_a_flag(raw, expected):
    assert ParseTimeSettings.from_env({"COVID19_LAKE_JHU_CATCHUP": raw}).jhu_catchup is expected


def test_catchup_rejects_anything_else():
    with pytest.raises(ValueError, match=r"^COVID19_LAKE_JHU_CATCHUP: expected true or false, got 'maybe'"):
        ParseTimeSettings.from_env({"COVID19_LAKE_JHU_CATCHUP": "maybe"})


@pytest.mark.parametrize(("env", "message"), [
    ({"COVID19_LAKE_SENSOR_POKE_SECONDS": "fast"}, "COVID19_LAKE_SENSOR_POKE_SECONDS: expected a number, got 'fast'"),
    ({"COVID19_LAKE_JHU_END_DATE": "2023-13-01"}, "COVID19_LAKE_JHU_END_DATE: expected a date (YYYY-MM-DD)"),
    ({"COVID19_LAKE_STEP_TIMEOUT_MINUTES": "0"}, "COVID19_LAKE_STEP_TIMEOUT_MINUTES: expected a positive number"),
    ({"COVID19_LAKE_SENSOR_MODE": "sometimes"}, "COVID19_LAKE_SENSOR_MODE: expected one of"),
    ({"COVID19_LAKE_TWEETS_SCHEDULE": "*/5 * * * *"},
     "COVID19_LAKE_TWEETS_SCHEDULE is no longer read: it is called COVID19_LAKE_TWEETS_INGEST_SCHEDULE now"),
])
def test_errors_name_the_environment_variable(env, message):
    with pytest.raises(ValueError) as error:
        ParseTimeSettings.from_env(env)
    assert str(error.value).startswith(message)


def test_schedules_and_empty_values():
    assert ParseTimeSettings.from_env({}).tweets_ingest_schedule == "*/15 * * * *"
    assert ParseTimeSettings.from_env({"COVID19_LAKE_TWEETS_INGEST_SCHEDULE": "none"}).tweets_ingest_schedule is None
    settings = ParseTimeSettings.from_env({"COVID19_LAKE_TWEETS_INGEST_SCHEDULE": "*/5 * * * *",
                                           "COVID19_LAKE_RECONCILE_SCHEDULE": "0 * * * *"})
    assert (settings.tweets_ingest_schedule, settings.reconcile_schedule) == ("*/5 * * * *", "0 * * * *")
    # An empty value is the default, as if unset.
    assert ParseTimeSettings.from_env({"COVID19_LAKE_SENSOR_POKE_SECONDS": ""}).sensor_poke_seconds == 60


def test_the_tweets_processing_dags_schedule_on_aws_and_only_run_when_triggered_on_the_local_stack(monkeypatch):
    """`none` (the local stack, whose tweets arrive on a virtual clock) leaves the DAGs unscheduled, so
    unpausing one to run a range starts no run for the real clock's current hour or week."""
    from datetime import UTC, datetime

    from airflow.dag_processing.dagbag import DagBag

    from covid19_lake import tweets_jobs

    defaults = ParseTimeSettings.from_env({})
    assert (defaults.tweets_process_schedule, defaults.weekly_schedule) == ("@hourly", "0 0 * * 1")
    local = {"COVID19_LAKE_TWEETS_PROCESS_SCHEDULE": "none", "COVID19_LAKE_WEEKLY_SCHEDULE": "none"}
    for env, expect_scheduled in (({}, True), (local, False)):
        for name in ("COVID19_LAKE_TWEETS_PROCESS_SCHEDULE", "COVID19_LAKE_WEEKLY_SCHEDULE"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        bag = DagBag(dag_folder=str(Path(__file__).resolve().parents[1] / "dags"))
        for dag_id in ("tweets_process", "weekly_tweets_vs_cases"):
            assert bag.dags[dag_id].timetable.can_be_scheduled is expect_scheduled, (dag_id, env)

    # Unscheduled, a run names its range; without one it says how, instead of guessing an hour.
    hour = datetime(2020, 3, 16, 10, tzinfo=UTC)
    assert tweets_jobs.run_hours({"start_hour": "2020-03-16T10", "end_hour": "2020-03-16T11"}, None) == [
        hour, hour.replace(hour=11)]
    assert tweets_jobs.run_hours({}, hour) == [hour]
    with pytest.raises(ValueError, match=r"COVID19_LAKE_TWEETS_PROCESS_SCHEDULE=none.*start_hour and end_hour"):
        tweets_jobs.run_hours({}, None)
    assert tweets_jobs.run_weeks({"start_week": "2020-03-16", "end_week": "2020-03-23"}, None) == [
        "2020-03-16", "2020-03-23"]
    assert tweets_jobs.run_weeks({}, datetime(2020, 3, 16, tzinfo=UTC)) == ["2020-03-16"]
    with pytest.raises(ValueError, match=r"COVID19_LAKE_WEEKLY_SCHEDULE=none.*start_week and end_week"):
        tweets_jobs.run_weeks({}, None)
