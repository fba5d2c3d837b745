"""One SMS per recipient with dynamic task mapping, then one delivery sensor over every id.

Each mapped send is a task instance of its own: it is retried on its own and, like any send of
the operator, never sends its SMS twice. For more than a few dozen recipients, use the batch
operator instead (``example_octopods_reminders``). Needs an ``octopods_default`` connection.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_octopods.operators.octopods import OctopodsSendSmsOperator
from airflow_provider_octopods.sensors.octopods import OctopodsDeliverySensor

with DAG(
    dag_id="example_octopods_mapped_sends",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "octopods"],
):
    # [START mapped_sends]
    reminders = OctopodsSendSmsOperator.partial(
        task_id="remind",
        body="See you tomorrow at the Elm Street clinic.",
        retries=2,  # safe: a retry never sends the SMS a second time
        retry_delay=timedelta(seconds=30),
    ).expand(phone=["+15005550100", "+447700900123"])
    OctopodsDeliverySensor(
        task_id="track_reminders",
        message_id=reminders.output,  # every mapped send's message_id, as one list
        poke_interval=1,
        timeout=3600,
    )
    # [END mapped_sends]
