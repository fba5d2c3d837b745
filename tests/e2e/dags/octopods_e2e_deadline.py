"""An Airflow 3.1+ deadline alert that fires: the run overruns a 3-second deadline."""

from __future__ import annotations

import importlib
import time
from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_octopods.notifications.octopods import octopods_deadline_callback

sdk = importlib.import_module("airflow.sdk")  # DeadlineAlert has no type stubs in 3.3

with DAG(
    dag_id="octopods_e2e_deadline",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    deadline=sdk.DeadlineAlert(
        reference=sdk.DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(seconds=3),
        callback=octopods_deadline_callback(phones=["+15005550100"]),
    ),
):

    @task
    def slow() -> None:
        time.sleep(25)

    slow()
