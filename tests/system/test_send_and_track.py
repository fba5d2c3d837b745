"""Operators and sensor inside real Airflow (dag.test on SQLite) against the sandbox on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import pytest

from airflow_provider_octopods.sandbox import SandboxServer
from tests.conftest import AIRFLOW_HOME, TEST_KEY
from tests.dagrun import RunOutcome

Run = Callable[..., RunOutcome]
Sandbox = Callable[..., SandboxServer]


@pytest.mark.parametrize("variant", ["current", "legacy"])
def test_example_send_and_track_succeeds(sandbox: Sandbox, run: Run, variant: str) -> None:
    server = sandbox(variant=variant)
    outcome = run("example_octopods_send_and_track", {"phone": "+1 500 555 0100"})
    assert outcome.state == "success", outcome.task_states
    [message] = server.messages()
    assert (message.phone, message.body) == ("+15005550100", "Hello from Airflow, sent with Octopods.")
    assert outcome.xcom("send") == message.message_id
    assert outcome.xcom("send", "send_result")["phone"] == "+1*******100"
    assert outcome.xcom("track_delivery")["status"] == "delivered"


def test_example_taskflow_with_the_hook(sandbox: Sandbox, run: Run) -> None:
    server = sandbox(final_after=0.0, sent_after=0.0)
    outcome = run("example_octopods_taskflow", {"phone": "+15005550100"})
    assert outcome.state == "success", outcome.task_states
    [message] = server.messages()
    assert message.body.startswith("Hi Jane, your appointment is confirmed for April 28 at 10:00.")
    assert outcome.xcom("report_status") == "delivered"


@pytest.mark.parametrize(("phone", "final"), [("+15005550101", "failed"), ("+15005550102", "undelivered")])
def test_failed_delivery_fails_the_sensor_fast(sandbox: Sandbox, run: Run, phone: str, final: str) -> None:
    server = sandbox()
    outcome = run("example_octopods_send_and_track", {"phone": phone})
    assert outcome.state == "failed"
    assert outcome.task_states == {"send": "success", "track_delivery": "failed"}
    status_reads = [r for r in server.requests() if r.method == "GET"]
    assert len(status_reads) <= 3  # failed at the first terminal status, not at the 600 s timeout


def test_invalid_phone_fails_before_any_request(sandbox: Sandbox, run: Run) -> None:
    server = sandbox()
    outcome = run("example_octopods_send_and_track", {"phone": "12345"})
    assert outcome.state == "failed"
    assert outcome.task_states["send"] == "failed"
    assert server.requests() == []


def test_sensor_in_reschedule_mode(sandbox: Sandbox, run: Run) -> None:
    sandbox(sent_after=0.5, final_after=1.5)
    outcome = run("octopods_sensor_reschedule")
    assert outcome.state == "success", outcome.task_states
    assert outcome.xcom("track")["status"] == "delivered"


def test_operator_waits_for_delivery(sandbox: Sandbox, run: Run) -> None:
    sandbox()
    outcome = run("octopods_send_wait")
    assert outcome.state == "success"
    assert outcome.xcom("send", "delivery_status")["status"] == "delivered"


def test_operator_wait_fails_on_undelivered(sandbox: Sandbox, run: Run) -> None:
    server = sandbox()
    outcome = run("octopods_send_wait", {"phone": "+15005550102"})
    assert outcome.state == "failed"
    assert len(server.messages()) == 1


def test_hubspot_workspace_send_succeeds_untracked(sandbox: Sandbox, run: Run) -> None:
    sandbox(variant="hubspot")
    outcome = run("octopods_send_wait")
    assert outcome.state == "success"
    assert outcome.xcom("send") is None
    assert outcome.xcom("send", "send_result")["message_id"] is None


@pytest.mark.parametrize(("phone", "code"), [("+15005550104", 3), ("+15005550106", 5)])
def test_non_retryable_api_errors_skip_airflow_retries(sandbox: Sandbox, run: Run, phone: str, code: int) -> None:
    server = sandbox()
    outcome = run("octopods_retries", {"phone": phone})
    assert outcome.state == "failed"
    assert outcome.tries["send"] == 1  # retries=2 in the DAG, none used
    assert [r.error_code for r in server.requests()] == [code]


def test_retryable_api_error_uses_airflow_retries(sandbox: Sandbox, run: Run) -> None:
    server = sandbox()
    outcome = run("octopods_retries", {"phone": "+15005550105"})
    assert outcome.state == "failed"
    assert outcome.tries["send"] == 3
    assert [r.error_code for r in server.requests()] == [4, 4, 4]


def test_missing_connection_fails_clearly(airflow_db: None, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_OCTOPODS_DEFAULT", raising=False)
    outcome = run("octopods_retries")
    assert outcome.state == "failed"
    assert outcome.tries["send"] == 1


def test_api_key_never_reaches_logs_or_xcom(
    sandbox: Sandbox, run: Run, capfd: pytest.CaptureFixture[str], read_logs: Callable[[], str]
) -> None:
    sandbox()
    outcomes = [
        run("example_octopods_send_and_track", {"phone": "+15005550100"}),
        run("example_octopods_send_and_track", {"phone": "+15005550106"}),
        run("octopods_send_wait", {"phone": "+15005550101"}),
    ]
    logs = read_logs()
    assert "Sending SMS to +1*******100" in logs  # the capture did see the task logs
    assert TEST_KEY not in logs
    # Tracebacks that Airflow logs echo this test's own source line (the run conf); skip those.
    ours = [line for line in logs.splitlines() if '{"phone": "+1500555010' not in line]
    assert not [line for line in ours if "15005550100" in line.replace("+1*******100", "")]
    for outcome in outcomes:
        assert TEST_KEY not in json.dumps([[*key, value] for key, value in outcome.xcoms.items()], default=str)
    for path in AIRFLOW_HOME.rglob("*.log"):
        assert TEST_KEY not in path.read_text(errors="replace"), path


def test_example_dags_parse_without_any_connection(airflow_db: None) -> None:
    code = (
        "import os, sys; [os.environ.pop(k) for k in list(os.environ) if k.startswith('AIRFLOW_CONN_')];"
        "sys.path.insert(0, '.'); from tests.dagrun import load_dag;"
        "from pathlib import Path;"
        "ids = ['example_octopods_send_and_track', 'example_octopods_taskflow', 'example_octopods_deferrable',"
        " 'example_octopods_failure_alerts'];"
        "[load_dag(Path('example_dags'), i) for i in ids]; print('parsed', len(ids))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "parsed 4" in result.stdout
