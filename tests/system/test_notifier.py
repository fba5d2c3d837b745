"""The notifier as task- and DAG-level callback inside real Airflow, against the sandbox."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

from airflow_provider_octopods.sandbox import SandboxServer
from tests.conftest import TEST_KEY, connection_json
from tools.dagrun import RunOutcome

Run = Callable[..., RunOutcome]
Sandbox = Callable[..., SandboxServer]
ON_CALL = ["+15005550100", "+447700900123"]


def bodies(server: SandboxServer, phone: str) -> list[str]:
    return [m.body for m in server.sent_to(phone)]


def test_example_dag_alerts_at_task_and_dag_level(sandbox: Sandbox, run: Run, read_logs: Callable[[], str]) -> None:
    server = sandbox()
    outcome = run("example_octopods_failure_alerts")
    assert outcome.state == "failed"
    assert outcome.task_states == {"flaky_step": "failed"}
    task_alert, dag_alert = bodies(server, "+15005550100")
    assert task_alert.startswith("Airflow: example_octopods_failure_alerts.flaky_step failed (try 1) run manual__")
    assert task_alert.endswith("ValueError: upstream file orders_2026-11-24.csv is empty")
    assert len(task_alert) <= 160
    assert dag_alert.startswith("Airflow: DAG example_octopods_failure_alerts failed run manual__")
    assert len(server.messages()) == 2
    logs = read_logs()
    assert "ValueError: upstream file orders_2026-11-24.csv is empty" in logs  # the run failed for its own reason
    assert TEST_KEY not in logs


@pytest.mark.parametrize(
    ("dag_id", "per_phone"), [("octopods_alert_burst_dedup", 1), ("octopods_alert_burst_plain", 5)]
)
def test_burst_of_failures(sandbox: Sandbox, run: Run, dag_id: str, per_phone: int) -> None:
    server = sandbox()
    outcome = run(dag_id)
    assert outcome.state == "failed"
    assert set(outcome.task_states.values()) == {"failed"}
    for phone in ON_CALL:
        assert len(bodies(server, phone)) == per_phone
    assert all("RuntimeError: database unreachable (" in body for body in bodies(server, ON_CALL[0]))


def test_template_fields_render_against_the_failing_context(sandbox: Sandbox, run: Run) -> None:
    server = sandbox()
    run("octopods_alert_templated")
    for phone in ON_CALL:
        assert bodies(server, phone) == ["octopods_alert_templated/load try 1: disk full"]


def test_bad_recipients_are_reported_and_the_others_alerted(
    sandbox: Sandbox, run: Run, read_logs: Callable[[], str]
) -> None:
    server = sandbox()
    outcome = run("octopods_alert_bad_recipients")
    assert outcome.task_states == {"load": "failed"}
    assert outcome.tries["load"] == 1
    assert len(bodies(server, "+15005550100")) == 1
    assert server.messages()[0].phone == "+15005550100"
    logs = read_logs()
    assert "Octopods alert not sent to " in logs
    assert "phone" in logs
    assert "DEPRECATED_API_KEY" in logs
    assert [r.error_code for r in server.requests()] == [5, None]


def test_api_down_is_logged_not_raised(
    airflow_db: None, run: Run, monkeypatch: pytest.MonkeyPatch, read_logs: Callable[[], str]
) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    monkeypatch.setenv(
        "AIRFLOW_CONN_OCTOPODS_DEFAULT", connection_json(host=f"http://127.0.0.1:{port}", connect_timeout=0.2)
    )
    outcome = run("example_octopods_failure_alerts")
    assert outcome.state == "failed"
    assert outcome.task_states == {"flaky_step": "failed"}
    logs = read_logs()
    assert "Octopods alert to +1*******100 failed (not sent): could not reach the Octopods API" in logs


def test_retry_and_success_callbacks(sandbox: Sandbox, run: Run) -> None:
    server = sandbox()
    outcome = run("octopods_alert_retry_and_success")
    assert outcome.state == "success"
    assert bodies(server, "+15005550100") == ["retrying second_time_lucky", "second_time_lucky recovered"]
