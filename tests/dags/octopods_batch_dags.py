"""DAGs for the batch operator's system tests."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_octopods.operators.octopods import OctopodsSendBatchOperator

DEFAULTS = {"start_date": datetime(2026, 1, 1), "schedule": None, "catchup": False}
BODY = "Hi {{ recipient.name }}, your appointment is on {{ recipient.time }}. Reply STOP to opt out."
OPTED_OUT = [f"07700 900{n:03d}" for n in range(200, 210)]  # national form, as a CRM keeps them


def reminder_rows() -> list[dict[str, str]]:
    """1,000 rows: 30 invalid (3 %), 20 duplicates (2 %), 10 opted out (1 %), 940 to send."""
    rows = [{"phone": f"+447700900{n:03d}", "name": f"Patient {n}", "time": "Tue 10:00"} for n in range(980)]
    for n in range(10):
        rows[n]["phone"] = "12345"  # no country code, no region: invalid
        rows[10 + n]["phone"] = ""  # missing
        del rows[20 + n]["time"]  # the template fails for this row only
    return rows + [dict(rows[100 + n]) for n in range(20)]


def probe_rows(first: int) -> list[dict[str, str]]:
    """Rows as a security probe writes them: rendered, the first would put the API key in the SMS
    and the second would fail the task. Numbers from ``+447700902<first>`` on."""
    names = ["{{ conn.octopods_default.password }}", "{{", "{{ 7*7 }}"]
    return [{"phone": f"+447700902{first + n:03d}", "name": name} for n, name in enumerate(names)]


with DAG(dag_id="octopods_batch_counts", **DEFAULTS):

    @task
    def recipients() -> list[dict[str, str]]:
        return reminder_rows()

    OctopodsSendBatchOperator(
        task_id="remind",
        recipients=recipients(),
        body=BODY,
        opt_out=OPTED_OUT,
        default_region="GB",
        rate_limit=400,
        max_failure_ratio=0.0,
    )

with DAG(dag_id="octopods_batch_dry_run", **DEFAULTS):
    OctopodsSendBatchOperator(
        task_id="remind",
        recipients=reminder_rows(),
        body=BODY,
        opt_out=OPTED_OUT,
        default_region="GB",
        dry_run="{{ params.get('dry_run', True) }}",
    )

with DAG(dag_id="octopods_batch_resume", **DEFAULTS):
    # 300 rows at 60/s take 5 s; each try is cut after 2 s: Airflow retries until all are sent.
    OctopodsSendBatchOperator(
        task_id="remind",
        recipients=[{"phone": f"+447700900{n:03d}", "name": f"P{n}"} for n in range(300)],
        body="Hi {{ recipient.name }}, see you tomorrow",
        rate_limit=60,
        execution_timeout=timedelta(seconds=2),
        retries=5,
        retry_delay=timedelta(seconds=0),
    )

with DAG(dag_id="octopods_batch_faults", **DEFAULTS):
    OctopodsSendBatchOperator(
        task_id="remind",
        recipients=[{"phone": f"+447700900{n:03d}", "name": f"P{n}"} for n in range(200)],
        body="Hi {{ recipient.name }}, your parcel arrives today",
        rate_limit=100,
        max_in_flight=8,
        max_failure_ratio=0.5,
        retries=0,
    )

with DAG(dag_id="octopods_batch_mapped", **DEFAULTS):

    @task
    def clinics() -> list[list[dict[str, str]]]:
        return [[{"phone": f"+447700901{c}{n:02d}", "name": f"P{n}"} for n in range(3)] for c in range(2)]

    OctopodsSendBatchOperator.partial(task_id="remind", body="Hi {{ recipient.name }}").expand(recipients=clinics())

with DAG(dag_id="octopods_batch_rows_are_data", **DEFAULTS):
    # The same rows three ways: written in the DAG, returned by an upstream task, mapped over.
    OctopodsSendBatchOperator(task_id="literal", recipients=probe_rows(0), body="Hi {{ recipient.name }}")

    @task(show_return_value_in_logs=False)  # its log would print the rows, phone numbers and all
    def extract() -> list[dict[str, str]]:
        return probe_rows(10)

    OctopodsSendBatchOperator(task_id="from_upstream", recipients=extract(), body="Hi {{ recipient.name }}")

    @task(show_return_value_in_logs=False)
    def clinic_lists() -> list[list[dict[str, str]]]:
        return [probe_rows(20), probe_rows(30)]

    OctopodsSendBatchOperator.partial(task_id="mapped", body="Hi {{ recipient.name }}").expand(
        recipients=clinic_lists()
    )


def campaign_rows(first: int, last: int) -> list[dict[str, str]]:
    """Rows for numbers ``+447700903<first>`` up to ``<last>`` (excluded)."""
    return [{"phone": f"+447700903{n:03d}", "name": f"Client {n}"} for n in range(first, last)]


REFUSED = {"phone": "+15005550104", "name": "refused"}  # the sandbox refuses this number (error 3)

with DAG(dag_id="octopods_campaign_renewals", params={"campaign": "renewals-2026-12"}, **DEFAULTS):
    # 40 rows accepted and 1 refused: with no failure allowed, every run of it fails after sending.
    OctopodsSendBatchOperator(
        task_id="remind",
        recipients=[*campaign_rows(0, 40), REFUSED],
        body="Hi {{ recipient.name }}, your policy renews on the 31st.",
        campaign="{{ params.campaign }}",
        max_failure_ratio=0.0,
    )

with DAG(dag_id="octopods_campaign_second_dag", params={"campaign": "renewals-2026-12"}, **DEFAULTS):
    # Another DAG, another text, on the same campaign: rows 20-39 were texted by the first DAG.
    OctopodsSendBatchOperator(
        task_id="remind_again",
        recipients=campaign_rows(20, 60),
        body="{{ recipient.name }}: last reminder, your policy renews on the 31st.",
        campaign="{{ params.campaign }}",
    )

with DAG(dag_id="octopods_batch_broken_plan", params={"dry_run": False}, **DEFAULTS):
    # A typo in the template: every row fails to render.
    OctopodsSendBatchOperator(
        task_id="remind",
        recipients=campaign_rows(100, 150),
        body="Hi {{ recipient.nmae }}, see you tomorrow.",
        dry_run="{{ params.dry_run }}",
        report_path="{{ params.report_path }}",
    )

with DAG(dag_id="octopods_batch_empty", **DEFAULTS):

    @task
    def extract() -> list[dict[str, str]]:
        return []  # an upstream extract that found nothing

    rows = extract()
    OctopodsSendBatchOperator(task_id="remind", recipients=rows, body="Hi {{ recipient.name }}")
    OctopodsSendBatchOperator(
        task_id="remind_if_any", recipients=rows, body="Hi {{ recipient.name }}", allow_empty=True
    )

with DAG(dag_id="octopods_batch_send_windows", params={"rows": [], "window": "00:00-00:01"}, **DEFAULTS):

    @task
    def todays_rows(params: dict[str, Any] | None = None) -> list[dict[str, str]]:
        return list((params or {})["rows"])  # rows whose times the test computes from the clock

    OctopodsSendBatchOperator(
        task_id="remind",
        recipients=todays_rows(),
        body="Hi {{ recipient.name }}, see you tomorrow.",
        send_window="{{ params.window }}",
        tz_field="tz",
        send_at_field="send_at",
        deadline=timedelta(minutes=5),
    )
