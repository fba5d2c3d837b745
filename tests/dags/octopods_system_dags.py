"""DAGs run by tests/system with dag.test() against the sandbox. Recipients come from run conf."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG, task

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


with DAG(dag_id="octopods_deferrable", params=PARAMS, **DEFAULTS):
    sent = OctopodsSendSmsOperator(task_id="send", phone="{{ params.phone }}", body="{{ params.body }}")
    tracked = OctopodsDeliverySensor(
        task_id="track",
        message_id="{{ ti.xcom_pull(task_ids='send') }}",
        deferrable=True,
        poke_interval=0.2,
        timeout=3,
    )
    sent >> tracked

with DAG(dag_id="octopods_deferrable_db_connection", params=PARAMS, **DEFAULTS):
    OctopodsSendSmsOperator(
        task_id="send",
        octopods_conn_id="octopods_in_db",
        phone="{{ params.phone }}",
        body="{{ params.body }}",
        wait_for_delivery=True,
        deferrable=True,
        poll_interval=0.2,
        delivery_timeout=20,
    )


@task
def send_many(params: dict | None = None) -> list[int | str | None]:
    from airflow_provider_octopods.hooks.octopods import OctopodsHook

    hook = OctopodsHook()
    return [hook.send_sms(phone, f"Batch message {n}").message_id for n, phone in enumerate((params or {})["phones"])]


for ratio, fail_fast in ((1.0, False), (0.5, False), (1.0, True)):
    with DAG(
        dag_id=f"octopods_deferrable_many_{int(ratio * 100)}{'_fast' if fail_fast else ''}",
        params={"phones": ["+15005550100"]},
        **DEFAULTS,
    ):
        send_many() >> OctopodsDeliverySensor(
            task_id="track_all",
            message_id="{{ ti.xcom_pull(task_ids='send_many') }}",
            deferrable=True,
            poke_interval=0.2,
            timeout=20,
            min_delivered_ratio=ratio,
            fail_fast=fail_fast,
        )
