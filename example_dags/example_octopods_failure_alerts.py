"""Be told by SMS when a pipeline fails.

The notifier sits on the DAG (one alert when the run fails) and on one task (an alert with that
task's error). ``flaky_step`` fails on purpose so the example shows the alert; point
``octopods_default`` at the sandbox (``octopods-sandbox``) to see the text it sends.
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_octopods.notifications.octopods import send_octopods_notification

ON_CALL = ["+15005550100"]

with DAG(
    dag_id="example_octopods_failure_alerts",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    on_failure_callback=send_octopods_notification(phones=ON_CALL),
    tags=["example", "octopods"],
):

    @task(on_failure_callback=send_octopods_notification(phones=ON_CALL))
    def flaky_step() -> None:
        raise ValueError("upstream file orders_2026-11-24.csv is empty")

    flaky_step()
