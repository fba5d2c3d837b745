"""Scheduled reminder batch: tomorrow's appointments, one personalised SMS each, then track them.

``appointments`` stands for the upstream query (SQL, an API); the batch checks every row, skips
invalid numbers, duplicates and opted-out patients, sends at ``rate_limit`` and never sends to the
same patient twice, even when Airflow retries it. The delivery sensor waits in the triggerer
for every id the batch returns, and ``summary`` reports both.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_octopods.operators.octopods import OctopodsSendBatchOperator
from airflow_provider_octopods.sensors.octopods import OctopodsDeliverySensor

with DAG(
    dag_id="example_octopods_reminders",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "octopods"],
):

    @task
    def appointments() -> list[dict[str, Any]]:
        return [
            {"phone": "+15005550100", "name": "Jane", "time": "09:30", "clinic": "Elm Street"},
            {"phone": "+447700900123", "name": "Tom", "time": "11:00", "clinic": "Elm Street"},
            {"phone": "020 7946 0958", "name": "Ada", "time": "14:15", "clinic": "Riverside"},  # GB, national
            {"phone": "+15005550100", "name": "Jane", "time": "09:30", "clinic": "Elm Street"},  # duplicate row
            {"phone": "12345", "name": "Bad", "time": "16:00", "clinic": "Riverside"},  # invalid number
        ]

    batch = OctopodsSendBatchOperator(
        task_id="send_reminders",
        recipients=appointments(),
        body="Hi {{ recipient.name }}, a reminder of your appointment tomorrow at {{ recipient.time }} "
        "at {{ recipient.clinic }}. Reply STOP to opt out.",
        default_region="GB",
        opt_out=[],  # or a Variable name holding the numbers that replied STOP
        rate_limit=10,
        # This demo list has 1 bad row in 5; a real list fails before sending above 5 % bad rows.
        max_invalid_ratio=0.2,
    )

    delivered = OctopodsDeliverySensor(
        task_id="wait_for_delivery",
        message_id=batch.output["message_ids"],  # type: ignore[index]  # the XCom key, not an item
        deferrable=True,
        poke_interval=2,
        timeout=600,
        min_delivered_ratio=0.9,
    )

    @task
    def summary(report: dict[str, Any], delivery: dict[str, Any]) -> str:
        return (
            f"{report['accepted']} sent, {report['invalid']} invalid, {report['duplicate']} duplicate, "
            f"{report['opted_out']} opted out; {len(delivery['delivered'])} delivered"
        )

    summary(batch.output, delivered.output)  # type: ignore[arg-type]
