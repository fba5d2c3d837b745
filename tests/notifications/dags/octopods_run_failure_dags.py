"""DAGs whose runs fail, each with the notifier as its ``on_failure_callback``: the DAG-level alert
must say which tasks failed (tests/notifications/test_run_failure_alerts.py)."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_octopods.notifications.octopods import OctopodsNotifier

DEFAULTS = {"start_date": datetime(2026, 1, 1), "schedule": None, "catchup": False}
ON_CALL = "+15005550100"  # the default text
LINKS = "+447700900123"  # a body with {{ log_url }}
WITH_LINK = "{{ event }} {{ log_url }}"
LONG = 100


def broken(task_id: str, on_failure_callback: OctopodsNotifier | None = None):  # type: ignore[no-untyped-def]
    @task(task_id=task_id, on_failure_callback=on_failure_callback)
    def fail() -> None:
        raise RuntimeError("disk full")

    return fail()


def fine(task_id: str):  # type: ignore[no-untyped-def]
    @task(task_id=task_id)
    def succeed() -> None:
        return None

    return succeed()


with DAG(
    dag_id="octopods_run_failure_named",
    on_failure_callback=[OctopodsNotifier(phones=ON_CALL), OctopodsNotifier(phones=LINKS, body=WITH_LINK)],
    **DEFAULTS,
):
    fine("clean")
    broken("extract_orders", on_failure_callback=OctopodsNotifier(phones=LINKS, body=WITH_LINK))
    broken("load_orders") >> fine("report")  # report: upstream_failed, not a failure of its own

with DAG(
    dag_id=("octopods_run_failure_" + "long_dag_id_" * 10)[:LONG],
    on_failure_callback=OctopodsNotifier(phones=ON_CALL),
    **DEFAULTS,
):
    for n in range(3):
        broken((f"step_{n}_" + "a_very_long_task_id_" * 5)[:LONG])
