"""DAGs whose tasks fail on purpose, for the notifier's system tests."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_octopods.notifications.octopods import OctopodsNotifier, send_octopods_notification

DEFAULTS = {"start_date": datetime(2026, 1, 1), "schedule": None, "catchup": False}
ON_CALL = ["+15005550100", "+447700900123"]


def broken(name: str, message: str):  # type: ignore[no-untyped-def]
    @task(task_id=name)
    def fail() -> None:
        raise RuntimeError(message)

    return fail


for dedup in (True, False):
    with DAG(
        dag_id=f"octopods_alert_burst_{'dedup' if dedup else 'plain'}",
        on_failure_callback=OctopodsNotifier(phones=ON_CALL, dedup_window=8) if dedup else None,
        **DEFAULTS,
    ):
        notifier = OctopodsNotifier(phones=ON_CALL, dedup_window=8 if dedup else None)
        for n in range(5):
            broken(f"step_{n}", f"database unreachable ({n})").override(on_failure_callback=notifier)()

with DAG(dag_id="octopods_alert_templated", params={"oncall": ON_CALL}, **DEFAULTS):
    broken("load", "disk full").override(
        on_failure_callback=send_octopods_notification(
            phones="{{ params.oncall }}",
            body="{{ dag.dag_id }}/{{ ti.task_id }} try {{ ti.try_number }}: {{ exception }}",
        )
    )()

with DAG(dag_id="octopods_alert_bad_recipients", **DEFAULTS):
    broken("load", "disk full").override(
        on_failure_callback=OctopodsNotifier(phones=["{{ 'not-a-number' }}", "+15005550106", "+15005550100"])
    )()

with DAG(dag_id="octopods_alert_retry_and_success", **DEFAULTS):

    @task(
        retries=1,
        retry_delay=timedelta(seconds=0),
        on_retry_callback=OctopodsNotifier(phones="+15005550100", body="retrying {{ ti.task_id }}"),
        on_success_callback=OctopodsNotifier(phones="+15005550100", body="{{ ti.task_id }} recovered"),
    )
    def second_time_lucky(ti=None) -> None:  # type: ignore[no-untyped-def]
        if ti.try_number < 2:
            raise RuntimeError("transient")

    second_time_lucky()

# --- Issue 10: every callback place, with the connection in the metadata DB or the environment ----

for where in ("db", "env"):
    conn_id = "octopods_in_db" if where == "db" else "octopods_default"
    with DAG(
        dag_id=f"octopods_alert_dag_level_{where}",
        on_failure_callback=OctopodsNotifier(phones="+15005550100", octopods_conn_id=conn_id),
        **DEFAULTS,
    ):
        broken("load", "disk full").override(
            on_failure_callback=OctopodsNotifier(phones="+447700900123", octopods_conn_id=conn_id)
        )()

    with DAG(
        dag_id=f"octopods_alert_kinds_{where}",
        on_success_callback=OctopodsNotifier(phones="+15005550100", octopods_conn_id=conn_id),
        **DEFAULTS,
    ):
        kinds = OctopodsNotifier(phones="+447700900123", octopods_conn_id=conn_id)

        @task(
            retries=1,
            retry_delay=timedelta(seconds=0),
            on_retry_callback=kinds,
            on_success_callback=kinds,
        )
        def flaky(ti=None) -> None:  # type: ignore[no-untyped-def]
            if ti.try_number < 2:
                raise RuntimeError("transient glitch")

        flaky()

with DAG(dag_id="octopods_alert_single_dedup", **DEFAULTS):
    broken("load", "disk full").override(on_failure_callback=OctopodsNotifier(phones=ON_CALL, dedup_window=4))()
