"""Issue 9 §1: every templated field takes what Airflow users pass, checked after rendering."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from airflow_provider_octopods.sandbox import SandboxServer
from tests.dagrun import RunOutcome

Run = Callable[..., RunOutcome]
Sandbox = Callable[..., SandboxServer]


def test_phone_from_a_taskflow_task_and_message_id_from_op_output(sandbox: Sandbox, run: Run) -> None:
    server = sandbox()
    outcome = run("octopods_wiring_taskflow")
    assert outcome.state == "success", outcome.task_states
    [message] = server.messages()
    assert message.phone == "+15005550100"
    assert outcome.xcom("send") == message.message_id
    assert outcome.xcom("track")["status"] == "delivered"


def test_fields_from_a_keyed_xcomarg(sandbox: Sandbox, run: Run) -> None:
    server = sandbox()
    outcome = run("octopods_wiring_output_key")
    assert outcome.state == "success", outcome.task_states
    [message] = server.messages()
    assert (message.phone, message.body) == ("+447700900123", "Your parcel arrives today.")


def test_sensor_over_a_list_of_outputs(sandbox: Sandbox, run: Run) -> None:
    server = sandbox()
    outcome = run("octopods_wiring_two_outputs")
    assert outcome.state == "success", outcome.task_states
    summary = outcome.xcom("track")
    assert sorted(summary["delivered"]) == sorted(m.message_id for m in server.messages())
    assert summary["total"] == 2


def test_mapped_send_then_one_sensor_over_the_mapped_ids(sandbox: Sandbox, run: Run) -> None:
    server = sandbox()
    outcome = run("octopods_wiring_mapped")
    assert outcome.state == "success", outcome.task_states
    assert sorted(m.phone for m in server.messages()) == ["+15005550100", "+15551234567", "+447700900123"]
    summary = outcome.xcom("track")
    assert sorted(summary["delivered"]) == sorted(m.message_id for m in server.messages())


def test_wrong_type_at_run_time_fails_naming_the_field(
    sandbox: Sandbox, run: Run, read_logs: Callable[[], str]
) -> None:
    server = sandbox()
    outcome = run("octopods_wiring_wrong_type")
    assert outcome.task_states["send"] == "failed"
    assert outcome.tries["send"] == 1  # retries=2, none used: rendering again gives the same value
    assert "phone: must be a string, got int" in read_logs()
    assert server.requests() == []


def test_notifier_phones_from_a_variable(sandbox: Sandbox, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    server = sandbox()
    monkeypatch.setenv("AIRFLOW_VAR_OCTOPODS_ONCALL", "+15005550100, +447700900123")
    outcome = run("octopods_wiring_notifier_variable")
    assert outcome.state == "failed"
    assert sorted((m.phone, m.body) for m in server.messages()) == [
        ("+15005550100", "fail_loudly broke"),
        ("+447700900123", "fail_loudly broke"),
    ]


def test_a_literal_that_no_rendering_can_fix_is_an_import_error(tmp_path: object, airflow_db: None) -> None:
    from pathlib import Path

    from tests.dagrun import load_dag

    folder = Path(str(tmp_path))
    (folder / "broken.py").write_text(
        "from datetime import datetime\n"
        "from airflow.providers.common.compat.sdk import DAG\n"
        "from airflow_provider_octopods.operators.octopods import OctopodsSendSmsOperator\n"
        "with DAG(dag_id='broken', start_date=datetime(2026, 1, 1), schedule=None):\n"
        "    OctopodsSendSmsOperator(task_id='send', phone='12345', body='hi')\n"
    )
    with pytest.raises(
        RuntimeError,
        match=r"DAG import errors.*OctopodsSendSmsOperator \(task .*send.*\) phone: \*\*345 has no country code",
    ):
        load_dag(folder, "broken")
