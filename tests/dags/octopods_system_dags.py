"""DAGs run by tests/system with dag.test() against the sandbox. Recipients come from run conf."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_octopods.operators.octopods import OctopodsSendSmsOperator
from airflow_provider_octopods.sensors.octopods import OctopodsDeliverySensor

DEFAULTS = {"start_date": datetime(2026, 1, 1), "schedule": None, "catchup": False}
PARAMS = {"phone": "+15005550100", "body": "System test message"}

with DAG(dag_id="octopods_sensor_reschedule", params=PARAMS, **DEFAULTS):
    send = OctopodsSendSmsOperator(task_id="send", phone="{{ params.phone }}", body="{{ params.body }}")
    track = OctopodsDeliverySensor(
        task_id="track",
        message_id="{{ ti.xcom_pull(task_ids='send') }}",
        mode="reschedule",
        poke_interval=1,
        timeout=60,
    )
    send >> track

with DAG(dag_id="octopods_send_wait", params=PARAMS, **DEFAULTS):
    OctopodsSendSmsOperator(
        task_id="send",
        phone="{{ params.phone }}",
        body="{{ params.body }}",
        wait_for_delivery=True,
        poll_interval=0.2,
        delivery_timeout=30,
    )

with DAG(dag_id="octopods_retries", params=PARAMS, **DEFAULTS):
    OctopodsSendSmsOperator(
        task_id="send",
        phone="{{ params.phone }}",
        body="{{ params.body }}",
        retries=2,
        retry_delay=timedelta(seconds=0),
    )
