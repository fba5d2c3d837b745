"""Send an SMS, then wait for its delivery receipt.

Trigger it with a configuration to choose the recipient and text::

    airflow dags trigger example_octopods_send_and_track --conf '{"phone": "+15551234567", "body": "Hi"}'

Needs an ``octopods_default`` connection (API key in the password field). The DAG parses
without one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_octopods.operators.octopods import OctopodsSendSmsOperator
from airflow_provider_octopods.sensors.octopods import OctopodsDeliverySensor

with DAG(
    dag_id="example_octopods_send_and_track",
    description="Send one SMS with Octopods and wait until it is delivered",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "phone": "+15005550100",
        "body": "Hello from Airflow, sent with Octopods.",
    },
    tags=["example", "octopods"],
):
    send = OctopodsSendSmsOperator(
        task_id="send",
        phone="{{ params.phone }}",
        body="{{ params.body }}",
        retries=2,  # safe: a retry never sends the SMS a second time
        retry_delay=timedelta(seconds=30),
    )
    track = OctopodsDeliverySensor(
        task_id="track_delivery",
        message_id=send.output,
        poke_interval=1,
        timeout=600,
    )
