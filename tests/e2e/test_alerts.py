"""Failure alerts in a real deployment: callbacks run by the scheduler, the DAG processor, the
task's own process and (Airflow 3) the triggerer, not by ``dag.test()``."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from airflow_provider_octopods.api.alerts import short_run_id
from tests.e2e.deployment import Deployment, airflow_major

Received = Callable[..., list[str]]
ON_CALL = ["+15005550100", "+447700900123"]


def run(deployment: Deployment, dag_id: str) -> tuple[str, str]:
    run_id = deployment.trigger(dag_id)
    return run_id, deployment.wait_run(dag_id, run_id)


def test_task_and_dag_level_failure_alerts_with_the_connection_in_the_environment(
    deployment: Deployment, received: Received
) -> None:
    run_id, state = run(deployment, "example_octopods_failure_alerts")
    assert state == "failed"
    alerts = received("example_octopods_failure_alerts", 2)
    task_alert = next(a for a in alerts if ".flaky_step failed" in a)
    assert task_alert.startswith("Airflow: example_octopods_failure_alerts.flaky_step failed (try 1 of 1) run manual__")
    assert task_alert.endswith("ValueError: upstream file orders_2026-11-24.csv is empty")
    [dag_alert] = [a for a in alerts if a.startswith("Airflow: DAG ")]
    assert (
        dag_alert
        == f"Airflow: DAG example_octopods_failure_alerts failed: task flaky_step (run {short_run_id(run_id)})"
    )
    assert len(alerts) == 2


def test_task_and_dag_level_failure_alerts_with_the_connection_in_the_metadata_db(
    deployment: Deployment, received: Received
) -> None:
    run_id, state = run(deployment, "octopods_alert_dag_level_db")
    assert state == "failed"
    [task_alert] = received("octopods_alert_dag_level_db.load failed", 1, phone="+447700900123")
    assert task_alert.endswith("RuntimeError: disk full")
    [dag_alert] = received("DAG octopods_alert_dag_level_db failed", 1, phone="+15005550100")
    assert dag_alert.endswith(f"failed: task load (run {short_run_id(run_id)})")


def test_retry_success_and_run_success_alerts_say_what_happened(deployment: Deployment, received: Received) -> None:
    run_id, state = run(deployment, "octopods_alert_kinds_db")
    assert state == "success"
    retry, success = received("octopods_alert_kinds_db.flaky", 2, phone="+447700900123")
    assert retry.startswith("Airflow: octopods_alert_kinds_db.flaky failed, will retry (try 1 of 2")
    assert retry.endswith("RuntimeError: transient glitch")
    assert success.startswith("Airflow: octopods_alert_kinds_db.flaky succeeded (try 2 of 2) run manual__")
    assert received("DAG octopods_alert_kinds_db succeeded", 1, phone="+15005550100") == [
        f"Airflow: DAG octopods_alert_kinds_db succeeded run {run_id}"
    ]


def test_simultaneous_failures_share_one_alert_and_the_late_one_is_named_by_the_dag_level_alert(
    deployment: Deployment, received: Received
) -> None:
    run_id, state = run(deployment, "octopods_e2e_burst")
    assert state == "failed"
    assert deployment.task_states("octopods_e2e_burst", run_id) == {
        "gate": "success",
        "load_0": "failed",
        "load_1": "failed",
        "load_2": "failed",
        "late_load": "failed",
    }
    for phone in ON_CALL:  # the DAG-level alert comes last; a later one would be a duplicate
        received("Airflow: DAG octopods_e2e_burst failed", 1, phone=phone)
    time.sleep(3)
    for phone in ON_CALL:
        alerts = received("octopods_e2e_burst", 2, phone=phone, timeout=0)
        first = next(a for a in alerts if not a.startswith("Airflow: DAG "))
        last = next(a for a in alerts if a.startswith("Airflow: DAG "))
        others = [a for a in alerts if a not in (first, last)]
        named = set(
            re.findall(r"\b(?:late_)?load(?:_\d)?\b", " ".join([first, *others, last.split("failed: tasks ")[-1]]))
        )
        assert named == {"load_0", "load_1", "load_2", "late_load"}
        assert "late_load" not in first
        if airflow_major() >= 3:  # the Local or Celery executor runs the three at once: one alert names them all
            assert first.startswith(f"Airflow: 3 tasks failed in octopods_e2e_burst run {run_id}: ")
        assert len(alerts) == 2, alerts
        if airflow_major() >= 3:
            assert "failed: tasks late_load, " in last  # the one not alerted yet first
    deadline = time.monotonic() + 30
    while [v for v in deployment.variables() if v.startswith("octopods_")] and time.monotonic() < deadline:
        time.sleep(1)
    assert [v for v in deployment.variables() if v.startswith("octopods_")] == []


if airflow_major() >= 3:

    def test_a_deadline_alert_fires_through_the_triggerer(deployment: Deployment, received: Received) -> None:
        run_id = deployment.trigger("octopods_e2e_deadline")
        [alert] = received("octopods_e2e_deadline", 1, timeout=60)
        assert alert.startswith("Airflow: DAG octopods_e2e_deadline run manual__"), alert
        assert re.search(r" missed its deadline \(due \d{4}-\d\d-\d\d \d\d:\d\d UTC, \d+s late\)$", alert), alert
        assert deployment.wait_run("octopods_e2e_deadline", run_id) == "success"  # the alert did not stop it
        assert "Octopods alert sent to +1*******100" in deployment.log_tail("triggerer", 500_000)
