"""DAGs for the end-to-end tests in a real deployment (both Airflow lines)."""

from __future__ import annotations

import time
from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_octopods.notifications.octopods import OctopodsNotifier

ON_CALL = ["+15005550100", "+447700900123"]
DEDUP = 60

with DAG(
    dag_id="octopods_e2e_burst",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_tasks=4,
    on_failure_callback=OctopodsNotifier(phones=ON_CALL, dedup_window=DEDUP),
):
    notifier = OctopodsNotifier(phones=ON_CALL, dedup_window=DEDUP)

    @task
    def gate() -> float:
        """The instant at which the three failures happen together (tasks start seconds apart)."""
        return time.time() + 10

    def fails_at(task_id: str, delay: float):  # type: ignore[no-untyped-def]
        @task(task_id=task_id, on_failure_callback=notifier)
        def fail(at: float) -> None:
            time.sleep(max(0.0, at + delay - time.time()))
            raise RuntimeError(f"{task_id} lost its database")

        return fail

    instant = gate()
    for n in range(3):
        fails_at(f"load_{n}", 0)(instant)
    fails_at("late_load", 20)(instant)
