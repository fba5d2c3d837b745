"""Two reminder batches on one Octopods channel, one at a time: an Airflow pool with one slot.

A channel's per-second limit is shared by everything that sends on it. An Airflow pool with one
slot per channel lets one batch at a time use it (here both at the channel's full rate), whichever
DAGs they belong to. Create the pool once:

    airflow pools set octopods_main_channel 1 "one Octopods batch at a time on the main channel"
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_octopods.operators.octopods import OctopodsSendBatchOperator

CHANNEL_POOL = "octopods_main_channel"
CHANNEL_LIMIT = 50  # the channel's requests per second, from the Octopods dashboard

with DAG(
    dag_id="example_octopods_channel_pool",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "octopods"],
):

    @task
    def appointments() -> list[dict[str, Any]]:
        return [{"phone": f"+447700906{n:03d}", "name": f"Patient {n}"} for n in range(100, 140)]

    @task
    def renewals() -> list[dict[str, Any]]:
        return [{"phone": f"+447700907{n:03d}", "name": f"Client {n}"} for n in range(100, 140)]

    for task_id, rows, body in (
        ("remind_appointments", appointments(), "Hi {{ recipient.name }}, see you tomorrow."),
        ("remind_renewals", renewals(), "Hi {{ recipient.name }}, your policy renews next week."),
    ):
        OctopodsSendBatchOperator(
            task_id=task_id, recipients=rows, body=body, rate_limit=CHANNEL_LIMIT, pool=CHANNEL_POOL
        )
