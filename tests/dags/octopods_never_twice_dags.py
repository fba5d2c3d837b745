"""DAGs for tests/system/test_never_twice.py and test_wiring.py: Airflow's lifecycle around a send."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_octopods.notifications.octopods import OctopodsNotifier
from airflow_provider_octopods.operators.octopods import OctopodsSendSmsOperator
from airflow_provider_octopods.sensors.octopods import OctopodsDeliverySensor

DEFAULTS: dict[str, Any] = {"start_date": datetime(2026, 1, 1), "schedule": None, "catchup": False}
NO_DELAY = timedelta(seconds=0)
PARAMS = {"phone": "+15005550100", "body": "Lifecycle test"}

# --- Wiring: XComArg, lists of them, mapped values, Variables ---------------------------------


@task
def lookup_phone() -> str:
    return "+15005550100"


@task(multiple_outputs=True)
def contact() -> dict[str, str]:
    return {"phone": "+447700900123", "body": "Your parcel arrives today."}


@task
def wrong_type() -> int:
    return 15005550100


with DAG(dag_id="octopods_wiring_taskflow", **DEFAULTS):
    sent = OctopodsSendSmsOperator(task_id="send", phone=lookup_phone(), body="Wired with task()")
    OctopodsDeliverySensor(task_id="track", message_id=sent.output, poke_interval=0.2, timeout=30)

with DAG(dag_id="octopods_wiring_output_key", **DEFAULTS):
    info = contact()
    OctopodsSendSmsOperator(task_id="send", phone=info["phone"], body=info["body"])

with DAG(dag_id="octopods_wiring_two_outputs", **DEFAULTS):
    first = OctopodsSendSmsOperator(task_id="first", phone="+15005550100", body="First")
    second = OctopodsSendSmsOperator(task_id="second", phone="+447700900123", body="Second")
    OctopodsDeliverySensor(
        task_id="track", message_id=[first.output, second.output], deferrable=True, poke_interval=0.2, timeout=30
    )

with DAG(dag_id="octopods_wiring_mapped", **DEFAULTS):
    mapped = OctopodsSendSmsOperator.partial(task_id="send", body="Mapped reminder").expand(
        phone=["+15005550100", "+447700900123", "+15551234567"]
    )
    OctopodsDeliverySensor(task_id="track", message_id=mapped.output, poke_interval=0.2, timeout=30)

with DAG(dag_id="octopods_wiring_wrong_type", **DEFAULTS):
    OctopodsSendSmsOperator(task_id="send", phone=wrong_type(), body="Never sent", retries=2, retry_delay=NO_DELAY)


@task
def fail_loudly() -> None:
    raise RuntimeError("the nightly load broke")


with DAG(dag_id="octopods_wiring_notifier_variable", **DEFAULTS):
    fail_loudly.override(
        on_failure_callback=OctopodsNotifier(phones="{{ var.value.octopods_oncall }}", body="{{ ti.task_id }} broke")
    )()

# --- Never twice: ambiguous answers, retries, timeouts, crashes ---------------------------------

with DAG(dag_id="octopods_ambiguous_retries", params=PARAMS, **DEFAULTS):
    OctopodsSendSmsOperator(
        task_id="send", phone="{{ params.phone }}", body="{{ params.body }}", retries=2, retry_delay=NO_DELAY
    )

with DAG(dag_id="octopods_deferral_timeout_retry", params={"phone": "+15005550103"}, **DEFAULTS):
    OctopodsSendSmsOperator(
        task_id="send",
        phone="{{ params.phone }}",
        body="Waiting for a receipt that never comes",
        wait_for_delivery=True,
        deferrable=True,
        poll_interval=0.2,
        delivery_timeout=1,
        retries=1,
        retry_delay=NO_DELAY,
    )

with DAG(dag_id="octopods_execution_timeout_retry", params={"phone": "+15005550103"}, **DEFAULTS):
    OctopodsSendSmsOperator(
        task_id="send",
        phone="{{ params.phone }}",
        body="Waiting in the worker until execution_timeout",
        wait_for_delivery=True,
        deferrable=False,
        poll_interval=0.2,
        delivery_timeout=60,
        execution_timeout=timedelta(seconds=3),
        retries=1,
        retry_delay=NO_DELAY,
    )


@task
def plant_unknown_outcome(**context: Any) -> None:
    """As if an earlier try of ``send`` died after its request went out: an intent, no result."""
    from airflow_provider_octopods.api import build_send_request
    from airflow_provider_octopods.send_record import OPERATOR_SLOT, SendGuard, TaskKey

    ti = context["ti"]
    guard = SendGuard(TaskKey(ti.dag_id, ti.run_id, "send"), try_number=1)
    guard.begin([(OPERATOR_SLOT, build_send_request("+15005550100", "Lifecycle test"))])


for resend in (False, True):
    with DAG(dag_id=f"octopods_unknown_outcome{'_resend' if resend else ''}", params=PARAMS, **DEFAULTS):
        plant_unknown_outcome() >> OctopodsSendSmsOperator(
            task_id="send",
            phone="{{ params.phone }}",
            body="{{ params.body }}",
            resend_unknown=resend,
            retries=2,
            retry_delay=NO_DELAY,
        )


@task(retries=1, retry_delay=NO_DELAY)
def remind_all(params: dict[str, Any] | None = None, **context: Any) -> list[Any]:
    """A user's own loop over the hook, as docs/guarantees.rst describes it ("Inside a hook loop")."""
    from airflow_provider_octopods.hooks.octopods import OctopodsHook

    assert params is not None
    hook = OctopodsHook()
    ids = [
        hook.send_sms(phone, f"Reminder {n}: see you tomorrow").message_id for n, phone in enumerate(params["phones"])
    ]
    if params.get("crash_after_sending") and context["ti"].try_number == 1:
        raise RuntimeError("the worker died after sending")
    return ids


with DAG(dag_id="octopods_hook_loop", params={"phones": ["+15005550100"], "crash_after_sending": False}, **DEFAULTS):
    remind_all()

# --- One rule for min_delivered_ratio in both modes ------------------------------------------------


@task
def send_three() -> list[Any]:
    from airflow_provider_octopods.hooks.octopods import OctopodsHook

    hook = OctopodsHook()
    phones = ("+15005550100", "+447700900123", "+15005550103")  # the last is never delivered
    return [hook.send_sms(phone, "Ratio test").message_id for phone in phones]


for deferrable in (False, True):
    with DAG(dag_id=f"octopods_ratio_{'deferrable' if deferrable else 'classic'}", **DEFAULTS):
        send_three() >> OctopodsDeliverySensor(
            task_id="track",
            message_id="{{ ti.xcom_pull(task_ids='send_three') }}",
            min_delivered_ratio=0.6,
            deferrable=deferrable,
            poke_interval=0.2,
            timeout=30,
        )
