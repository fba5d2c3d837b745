"""Two reminder batches on one Octopods channel at the same time, without a pool.

Each batch paces itself at its share of the channel's per-second limit, so the API has no reason
to answer 429. If the shares add up to more than the limit (or something else sends on the
channel), the API's 429s pause the batch that meets them for their ``Retry-After`` and lower its
rate: the batches slow down, and every row is still sent once (the provider's tests measure 15 %
of requests answered 429 when two batches each take the whole limit).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_octopods.operators.octopods import OctopodsSendBatchOperator

CHANNEL_LIMIT = 50  # the channel's requests per second, from the Octopods dashboard

with DAG(
    dag_id="example_octopods_channel_shared",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "octopods"],
):

    @task
    def deliveries() -> list[dict[str, Any]]:
        return [{"phone": f"+447700908{n:03d}", "name": f"Customer {n}"} for n in range(100, 140)]

    @task
    def surveys() -> list[dict[str, Any]]:
        return [{"phone": f"+447700909{n:03d}", "name": f"Customer {n}"} for n in range(100, 140)]

    for task_id, rows, body in (
        ("notify_deliveries", deliveries(), "Hi {{ recipient.name }}, your parcel arrives today."),
        ("ask_surveys", surveys(), "Hi {{ recipient.name }}, how did we do? Reply 1-5."),
    ):
        OctopodsSendBatchOperator(task_id=task_id, recipients=rows, body=body, rate_limit=CHANNEL_LIMIT / 2)
