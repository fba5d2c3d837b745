"""Fewer, better alerts: one text for failures that come together, a text when a task will retry,
and (Airflow 3.1+) a text when a run overruns its deadline.

``extract`` fails once on purpose and succeeds on its retry; the three ``load_*`` tasks then fail
on purpose. Point ``octopods_default`` at the sandbox (``octopods-sandbox``) to see the texts:
one "will retry", one for the first failed load, and the DAG run's alert naming the other two.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_octopods.notifications.octopods import (
    octopods_deadline_callback,
    send_octopods_notification,
)

ON_CALL = ["+15005550100"]
DEDUP_WINDOW = 300  # seconds: one failure alert per phone per run and window

# [START deadline]
try:  # Airflow 3.1+: a text when a run is still going 30 minutes after it was queued
    from airflow.sdk import DeadlineAlert, DeadlineReference  # type: ignore[attr-defined,import-not-found,unused-ignore]
except ImportError:  # Airflow 2.11: sla_miss_callback=send_octopods_notification(phones=ON_CALL)
    LATE: dict[str, Any] = {}
else:
    LATE = {
        "deadline": DeadlineAlert(
            reference=DeadlineReference.DAGRUN_QUEUED_AT,
            interval=timedelta(minutes=30),
            callback=octopods_deadline_callback(phones=ON_CALL),
        )
    }
# [END deadline]

# [START dedup]
with DAG(
    dag_id="example_octopods_alert_policies",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    # The run's alert names the failures that the task alerts held back: same phones, same window.
    on_failure_callback=send_octopods_notification(phones=ON_CALL, dedup_window=DEDUP_WINDOW),
    tags=["example", "octopods"],
    **LATE,
):
    failure_alert = send_octopods_notification(phones=ON_CALL, dedup_window=DEDUP_WINDOW)

    @task(
        retries=2,
        retry_delay=timedelta(seconds=5),
        on_retry_callback=send_octopods_notification(phones=ON_CALL),  # retry alerts are never held back
        on_failure_callback=failure_alert,
    )
    def extract(ti: Any = None) -> None:
        if ti.try_number < 2:
            raise ConnectionError("orders API timed out")

    loads = []
    for table in ("orders", "customers", "invoices"):

        @task(task_id=f"load_{table}", on_failure_callback=failure_alert)
        def load(table: str = table) -> None:
            raise RuntimeError(f"warehouse refused the {table} rows: disk full")

        loads.append(load())

    extract() >> loads
# [END dedup]
