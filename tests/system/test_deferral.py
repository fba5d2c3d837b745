"""Deferrable waiting through a real deferral: the task defers, the trigger runs against the sandbox
on 127.0.0.1 inside dag.test(), and the task resumes in execute_complete."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from airflow_provider_octopods.sandbox import SandboxServer
from tests.conftest import TEST_KEY
from tests.dagrun import RunOutcome

Run = Callable[..., RunOutcome]
Sandbox = Callable[..., SandboxServer]
TRIGGER_LINE = "Octopods delivery:"  # logged only by OctopodsDeliveryTrigger.run


def test_example_deferrable_dag(sandbox: Sandbox, run: Run, read_logs: Callable[[], str]) -> None:
    server = sandbox()
    outcome = run("example_octopods_deferrable")
    assert outcome.state == "success", outcome.task_states
    [message] = server.messages()
    assert outcome.xcom("wait_for_delivery")["message_id"] == message.message_id
    assert TRIGGER_LINE in read_logs()


def test_sensor_defers_and_succeeds(sandbox: Sandbox, run: Run, read_logs: Callable[[], str]) -> None:
    sandbox(sent_after=0.3, final_after=0.8)
    outcome = run("octopods_deferrable")
    assert outcome.state == "success", outcome.task_states
    assert outcome.xcom("track")["status"] == "delivered"
    logs = read_logs()
    assert TRIGGER_LINE in logs
    assert TEST_KEY not in logs


@pytest.mark.parametrize(("phone", "final"), [("+15005550101", "failed"), ("+15005550102", "undelivered")])
def test_sensor_deferred_failure_fails_with_reason(
    sandbox: Sandbox, run: Run, read_logs: Callable[[], str], phone: str, final: str
) -> None:
    sandbox()
    outcome = run("octopods_deferrable", {"phone": phone})
    assert outcome.task_states == {"send": "success", "track": "failed"}
    logs = read_logs()
    assert TRIGGER_LINE in logs
    assert f"({final}: " in logs


def test_sensor_deferred_timeout_names_pending_ids(sandbox: Sandbox, run: Run, read_logs: Callable[[], str]) -> None:
    server = sandbox()
    outcome = run("octopods_deferrable", {"phone": "+15005550103"})  # sent, never delivered
    assert outcome.task_states == {"send": "success", "track": "failed"}
    [message] = server.messages()
    assert f"still pending at the deadline: {message.message_id}" in read_logs()


@pytest.fixture
def db_connection(sandbox: Sandbox) -> Iterator[SandboxServer]:
    """A connection stored in the metadata DB (as the UI stores it), not in an env var."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    server = sandbox()
    with create_session() as session:
        session.add(
            Connection(
                conn_id="octopods_in_db",
                conn_type="octopods",
                host=server.url,
                password=TEST_KEY,
                extra='{"read_timeout": "5"}',
            )
        )
    yield server
    with create_session() as session:
        session.query(Connection).filter(Connection.conn_id == "octopods_in_db").delete()


def test_operator_defers_with_a_connection_from_the_metadata_db(
    db_connection: SandboxServer, run: Run, read_logs: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_OCTOPODS_IN_DB", raising=False)
    outcome = run("octopods_deferrable_db_connection")
    assert outcome.state == "success", outcome.task_states
    [message] = db_connection.messages()
    assert outcome.xcom("send") == message.message_id
    assert outcome.xcom("send", "send_result")["message_id"] == message.message_id  # pushed before deferring
    assert outcome.xcom("send", "delivery_status")["status"] == "delivered"
    logs = read_logs()
    assert TRIGGER_LINE in logs
    assert TEST_KEY not in logs
    assert len(db_connection.messages()) == 1


MIXED = ["+15005550100", "+15005550101", "+15005550100", "+15005550102", "+15005550100"]


def test_many_ids_report_at_the_end(sandbox: Sandbox, run: Run, read_logs: Callable[[], str]) -> None:
    server = sandbox()
    outcome = run("octopods_deferrable_many_100", {"phones": MIXED})
    assert outcome.task_states == {"send_many": "success", "track_all": "failed"}
    ids = [m.message_id for m in server.messages()]
    logs = read_logs()
    assert "3/5 message(s) reached 'delivered' (needed 5)" in logs
    assert f"{ids[1]} (failed: " in logs
    assert f"{ids[3]} (undelivered: " in logs
    polled = [r.path for r in server.requests() if r.method == "GET"]
    for message_id in ids:
        # a message is not read again once it reached a final status
        assert polled.count(f"/api/v1/sms/messages/{message_id}") <= 3


def test_many_ids_with_a_minimum_ratio_succeed(sandbox: Sandbox, run: Run) -> None:
    server = sandbox()
    outcome = run("octopods_deferrable_many_50", {"phones": MIXED})
    assert outcome.state == "success", outcome.task_states
    summary = outcome.xcom("track_all")
    ids = [m.message_id for m in server.messages()]
    # success as soon as 3 of 5 are delivered; the rest may not be final yet
    assert [ids[0], ids[2], ids[4]] == summary["delivered"]
    assert set(summary["failed"]) <= {str(ids[1]), str(ids[3])}
    assert len(summary["failed"]) + len(summary["pending"]) == 2


def test_many_ids_fail_fast(sandbox: Sandbox, run: Run, read_logs: Callable[[], str]) -> None:
    sandbox(sent_after=0.0, final_after=0.0)
    outcome = run("octopods_deferrable_many_100_fast", {"phones": ["+15005550101", *["+15005550103"] * 3]})
    assert outcome.task_states["track_all"] == "failed"
    assert "SMS delivery failure" in read_logs()
