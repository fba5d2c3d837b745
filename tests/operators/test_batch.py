"""OctopodsSendBatchOperator: parse-time checks, and execute against the sandbox (in-memory record)."""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from airflow_provider_octopods.operators.octopods import OctopodsSendBatchOperator
from airflow_provider_octopods.sandbox import SandboxServer
from airflow_provider_octopods.send_record import MemoryStore
from tests.conftest import TEST_KEY

ROWS = [{"phone": f"+447700900{n:03d}", "name": f"P{n}"} for n in range(10)]


def operator(**kw: Any) -> OctopodsSendBatchOperator:
    args: dict[str, Any] = {"task_id": "remind", "recipients": ROWS, "body": "Hi {{ recipient.name }}"}
    return OctopodsSendBatchOperator(**(args | kw))


class TaskInstance(SimpleNamespace):
    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def context(try_number: int = 1) -> dict[str, Any]:
    ti = TaskInstance(dag_id="d", run_id="r", task_id="remind", map_index=-1, try_number=try_number, pushed={})
    return {"ti": ti, "task_instance": ti, "ds": "2026-11-25"}


@pytest.fixture
def server(octopods_sandbox_factory: Any, monkeypatch: pytest.MonkeyPatch) -> SandboxServer:
    sandbox: SandboxServer = octopods_sandbox_factory()
    monkeypatch.setenv("AIRFLOW_CONN_OCTOPODS_DEFAULT", sandbox.connection_json(TEST_KEY))
    return sandbox


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"body": ""}, "body: must be a non-empty text template"),
        ({"body": "Hi {{ recipient.name "}, "body: is not a valid Jinja template"),
        ({"body": "x" * 1601}, "body: "),
        ({"recipients": []}, "recipients: is an empty list"),
        ({"recipients": 42}, "recipients: must be a list of rows or a CSV path"),
        ({"rate_limit": -1}, "rate_limit"),
        ({"max_in_flight": 0}, "max_in_flight: must be a whole number of at least 1"),
        ({"max_failure_ratio": 2}, "max_failure_ratio: must be between 0 and 1"),
        ({"default_region": "XX"}, "default_region"),
        ({"dry_run": "maybe"}, "dry_run: must be True or False"),
        ({"phone_field": ""}, "phone_field: must be a field name"),
    ],
)
def test_a_literal_no_rendering_can_fix_is_refused_when_the_dag_is_parsed(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        operator(**kwargs)


def test_templates_and_xcom_args_are_left_for_execute() -> None:
    from airflow.providers.common.compat.sdk import DAG, task

    with DAG(dag_id="d", schedule=None):

        @task
        def rows() -> list[dict[str, str]]:
            return ROWS  # type: ignore[return-value]

        operator(recipients=rows(), default_region="{{ params.region }}", dry_run="{{ params.dry }}")
        operator(task_id="csv", recipients="/data/{{ ds }}/patients.csv")
    assert set(OctopodsSendBatchOperator.template_fields) >= {"recipients", "default_region", "opt_out", "dry_run_only"}


def test_rendered_recipients_and_opt_out_show_a_count_not_the_numbers() -> None:
    op = operator(opt_out=["+447700900001", "+447700900002"])
    op.render_template_fields(context(), jinja_env=op.get_template_env())
    assert op.recipients == "10 recipients (list)"
    assert op.opt_out == "2 numbers (list)"
    op.render_template_fields(context(), jinja_env=op.get_template_env())  # rendering again keeps the rows
    assert op.recipients == "10 recipients (list)"
    assert op._opt_out(None)("+447700900002")  # type: ignore[misc]


def test_on_kill_stops_a_running_batch(octopods_sandbox_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    sandbox = octopods_sandbox_factory()
    monkeypatch.setenv("AIRFLOW_CONN_OCTOPODS_DEFAULT", sandbox.connection_json(TEST_KEY))
    rows = [{"phone": f"+4477009{n:05d}", "name": str(n)} for n in range(400)]
    op = operator(recipients=rows, rate_limit=100, record_store=MemoryStore(), max_failure_ratio=1.0)
    threading.Timer(1.0, op.on_kill).start()  # Airflow 3's SIGTERM handler calls on_kill
    ctx = context()
    with pytest.raises(AirflowException, match="Batch stopped by Airflow before its end; a retry sends the rest"):
        op.execute(ctx)
    summary = ctx["ti"].pushed["report"]
    assert 50 < len(sandbox.messages()) < 200  # stopped after about a second at 100/s
    assert summary["accepted"] == len(sandbox.messages())
    assert summary["unknown"] == 0
    assert summary["failed"] == 400 - summary["accepted"]  # not sent, for the next try


def test_csv_recipients_variable_opt_out_and_a_report_file(
    server: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "patients.csv"
    with source.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=["phone", "name"])
        writer.writeheader()
        writer.writerows(ROWS)
    monkeypatch.setenv("AIRFLOW_VAR_SMS_OPT_OUT", '["07700 900001", "+447700900002"]')
    report_path = tmp_path / "out" / "report.csv"
    op = operator(
        recipients=str(source),
        opt_out="sms_opt_out",
        default_region="GB",
        report_path=str(report_path),
        record_store=MemoryStore(),
    )
    summary = op.execute(context())
    assert (summary["accepted"], summary["opted_out"]) == (8, 2)
    assert summary["report_path"] == str(report_path)
    lines = report_path.read_text().splitlines()
    assert lines[0] == "row,phone,outcome,message_id,error_code,error"
    assert lines[2] == "2,+44*******001,opted_out,,,"
    assert len(server.messages()) == 8


def test_a_callable_opt_out_and_a_second_try_that_sends_nothing_again(server: SandboxServer) -> None:
    store = MemoryStore()
    op = operator(opt_out=lambda phone: phone.endswith("9"), record_store=store)
    first = op.execute(context(1))
    assert (first["accepted"], first["opted_out"]) == (9, 1)
    again = op.execute(context(2))  # e.g. a later task in the try failed and Airflow retried
    assert (again["accepted"], again["accepted_earlier"]) == (9, 9)
    assert sorted(again["message_ids"]) == sorted(first["message_ids"])
    assert len(server.messages()) == 9
    assert server.duplicates() == 0


def test_an_unknown_outcome_of_an_earlier_try_is_listed_not_resent_unless_asked(server: SandboxServer) -> None:
    from airflow_provider_octopods.api import build_send_request
    from airflow_provider_octopods.send_record import SendRecord, TaskKey

    store = MemoryStore()
    record = SendRecord(TaskKey("d", "r", "remind"), try_number=1, store=store)
    request = build_send_request(ROWS[3]["phone"], "Hi P3")
    record.begin([(f"{record.content(request)}#1", request)])  # the worker died after this intent
    summary = operator(record_store=store, max_failure_ratio=0.5).execute(context(2))
    assert (summary["accepted"], summary["unknown"], summary["unknown_rows"]) == (9, 1, [4])
    assert not any(m.phone.endswith("900003") for m in server.messages())
    with pytest.raises(AirflowFailException, match="1 unknown of the rows sent"):  # by default, a human decides
        operator(record_store=store).execute(context(3))
    resent = operator(record_store=store, resend_unknown=True).execute(context(4))
    assert (resent["accepted"], resent["unknown"]) == (10, 0)


def test_policy_breach_fails_the_task_after_sending_everything_and_pushing_the_report(server: SandboxServer) -> None:
    rows = [*ROWS, {"phone": "+15005550104", "name": "refused"}, {"phone": "oops", "name": "invalid"}]
    ctx = context()
    with pytest.raises(AirflowFailException, match=r"1 failed and 0 unknown .* > max_failure_ratio=5.0%") as err:
        operator(recipients=rows, record_store=MemoryStore()).execute(ctx)
    assert not isinstance(err.value, AirflowException) or isinstance(err.value, AirflowFailException)
    report = ctx["ti"].pushed["report"]
    assert (report["accepted"], report["failed"], report["invalid"]) == (10, 1, 1)
    assert report["failed_by_code"] == {"error_3": 1}
    assert len(server.messages()) == 10
    ctx = context()
    with pytest.raises(AirflowFailException, match="1 invalid rows"):
        operator(recipients=rows[:-2] + rows[-1:], fail_on_invalid=True, record_store=MemoryStore()).execute(ctx)
    tolerant = operator(recipients=rows, max_failure_ratio=0.5, record_store=MemoryStore()).execute(context())
    assert tolerant["failed"] == 1


def test_a_retryable_failure_over_the_ratio_lets_airflow_retry(
    octopods_sandbox_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = octopods_sandbox_factory(faults=("http_503:1.0:send",))
    monkeypatch.setenv("AIRFLOW_CONN_OCTOPODS_DEFAULT", sandbox.connection_json(TEST_KEY))
    with pytest.raises(AirflowException, match="A retry sends only the rows not accepted yet") as err:
        operator(recipients=ROWS[:2], record_store=MemoryStore()).execute(context())
    assert not isinstance(err.value, AirflowFailException)


def test_the_objects_alive_during_a_batch_are_kept_out_of_full_garbage_collections(server: SandboxServer) -> None:
    import gc

    frozen_while_planning: list[int] = []

    def opted_out(phone: str) -> bool:
        frozen_while_planning.append(gc.get_freeze_count())
        return False

    assert gc.get_freeze_count() == 0
    summary = operator(opt_out=opted_out, record_store=MemoryStore()).execute(context())
    assert summary["accepted"] == 10
    assert min(frozen_while_planning) > 0
    assert gc.get_freeze_count() == 0  # given back
