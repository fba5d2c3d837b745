"""Send an SMS, then wait for its delivery receipt in the triggerer (no worker slot held).

The operator returns the message id; the sensor defers to ``OctopodsDeliveryTrigger``, which
polls the status every ``poke_interval`` seconds until delivery, failure, or ``timeout``.
Set ``[operators] default_deferrable = True`` to make every Octopods wait deferrable.
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_octopods.operators.octopods import OctopodsSendSmsOperator
from airflow_provider_octopods.sensors.octopods import OctopodsDeliverySensor

with DAG(
    dag_id="example_octopods_deferrable",
    description="Send one SMS and wait for delivery deferrably",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"phone": "+15005550100", "body": "Your delivery arrives today between 10:00 and 12:00."},
    tags=["example", "octopods"],
):
    send = OctopodsSendSmsOperator(task_id="send", phone="{{ params.phone }}", body="{{ params.body }}")
    wait = OctopodsDeliverySensor(
        task_id="wait_for_delivery",
        message_id=send.output,
        deferrable=True,
        poke_interval=1,
        timeout=3600,
    )
    send >> wait
