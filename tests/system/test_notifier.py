"""The notifier as task- and DAG-level callback inside real Airflow, against the sandbox."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from airflow_provider_octopods.sandbox import SandboxServer
from tests.conftest import TEST_KEY, connection_json
from tests.dagrun import RunOutcome, octopods_variables

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
    assert task_alert.startswith("Airflow: example_octopods_failure_alerts.flaky_step failed (try 1 of 1) run manual__")
    assert task_alert.endswith("ValueError: upstream file orders_2026-11-24.csv is empty")
    assert len(task_alert) <= 160
    assert dag_alert.startswith("Airflow: DAG example_octopods_failure_alerts failed: task flaky_step (run manual ")
    assert len(server.messages()) == 2
    logs = read_logs()
    assert "ValueError: upstream file orders_2026-11-24.csv is empty" in logs  # the run failed for its own reason
    assert TEST_KEY not in logs


def test_burst_without_dedup_alerts_each_failure(sandbox: Sandbox, run: Run) -> None:
    server = sandbox()
    outcome = run("octopods_alert_burst_plain")
    assert set(outcome.task_states.values()) == {"failed"}
    for phone in ON_CALL:
        assert len(bodies(server, phone)) == 5


def test_dedup_names_every_failure_and_leaves_nothing_behind(sandbox: Sandbox, run: Run) -> None:
    # dag.test runs tasks one after the other: step_0's alert comes first, the other four fail
    # inside its window and are named by the DAG-level alert, which also deletes the ledger.
    server = sandbox()
    outcome = run("octopods_alert_burst_dedup")
    assert set(outcome.task_states.values()) == {"failed"}
    for phone in ON_CALL:
        first, last = bodies(server, phone)
        assert first.startswith("Airflow: octopods_alert_burst_dedup.step_")
        leader = first.split(".")[1].split()[0]
        assert last.startswith("Airflow: DAG octopods_alert_burst_dedup failed: tasks ")
        named = last.split("failed: tasks ")[1].split(" (run ")[0].split(", ")
        assert sorted(named) == [f"step_{n}" for n in range(5)]  # every failed task, by name
        assert named[-1] == leader  # the one alerted already comes last
    assert octopods_variables() == []


def test_ledger_is_deleted_at_run_end_when_every_failure_was_named(sandbox: Sandbox, run: Run) -> None:
    server = sandbox()
    outcome = run("octopods_alert_single_dedup")  # no DAG-level notifier: the listener tidies up
    assert outcome.state == "failed"
    assert [len(bodies(server, phone)) for phone in ON_CALL] == [1, 1]
    assert octopods_variables() == []


def simultaneous_failures(server: SandboxServer, *, dag_level: bool) -> Callable[[str], None]:
    """Three failure callbacks of one run at the same instant, in threads; returns a way to fail more."""
    import threading
    from types import SimpleNamespace

    from airflow.providers.common.compat.sdk import DAG

    from airflow_provider_octopods.notifications.octopods import OctopodsNotifier

    notifier = OctopodsNotifier(phones=ON_CALL, dedup_window=20)
    closing = OctopodsNotifier(phones=ON_CALL, dedup_window=20) if dag_level else None
    dag = DAG(dag_id="clinic", schedule=None, on_failure_callback=closing)
    run_id = f"manual__simultaneous_{threading.get_ident()}_{dag_level}"

    def fail(task_id: str) -> None:
        ti = SimpleNamespace(dag_id="clinic", task_id=task_id, run_id=run_id, try_number=1, max_tries=0, state="failed")
        run = SimpleNamespace(dag_id="clinic", run_id=run_id)  # not in the DB: the notifier finds it still going
        context = {"ti": ti, "task_instance": ti, "dag": dag, "dag_run": run, "run_id": run_id}
        notifier(context | {"exception": RuntimeError("db down")})

    threads = [threading.Thread(target=fail, args=(f"load_{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for phone in ON_CALL:
        [alert] = bodies(server, phone)
        assert alert.startswith(f"Airflow: 3 tasks failed in clinic run {run_id}: ")
        assert sorted(alert.split(": ")[2].split(", ")) == ["load_0", "load_1", "load_2"]

    def more(task_id: str) -> None:
        if task_id == "DAG":
            assert closing is not None
            closing({"dag": dag, "run_id": run_id, "reason": "task_failure"})
        else:
            fail(task_id)

    more.run_id = run_id  # type: ignore[attr-defined]
    return more


def test_simultaneous_failures_get_one_alert_naming_all_and_a_late_one_is_named_at_run_end(
    sandbox: Sandbox, airflow_db: None
) -> None:
    from airflow_provider_octopods.notifications.dedup import run_ended

    server = sandbox()
    fail = simultaneous_failures(server, dag_level=True)
    fail("late_step")  # inside the window, a DAG-level alert to come: recorded, not alerted
    assert all(len(bodies(server, phone)) == 1 for phone in ON_CALL)
    fail("DAG")
    for phone in ON_CALL:
        assert "failed: task late_step (run " in bodies(server, phone)[-1]  # the one not alerted yet
    run_ended("clinic", fail.run_id)  # type: ignore[attr-defined]  # the scheduler's listener, at the run's end
    assert octopods_variables() == []


def test_a_late_failure_with_no_dag_level_alert_to_name_it_alerts_at_once(sandbox: Sandbox, airflow_db: None) -> None:
    from airflow_provider_octopods.notifications.dedup import run_ended

    server = sandbox()
    fail = simultaneous_failures(server, dag_level=False)
    fail("late_step")  # inside the window, but nothing later is sure to name it
    for phone in ON_CALL:
        _, late = bodies(server, phone)
        assert late.startswith("Airflow: clinic.late_step failed (try 1 of 1) run manual__simultaneous_")
    run_ended("clinic", fail.run_id)  # type: ignore[attr-defined]
    assert octopods_variables() == []


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


@pytest.fixture
def db_connection(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxServer]:
    """The connection stored in the metadata DB, as `airflow connections add` stores it."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    server = sandbox()
    monkeypatch.delenv("AIRFLOW_CONN_OCTOPODS_IN_DB", raising=False)
    with create_session() as session:
        session.add(Connection(conn_id="octopods_in_db", conn_type="octopods", host=server.url, password=TEST_KEY))
    yield server
    with create_session() as session:
        session.query(Connection).filter(Connection.conn_id == "octopods_in_db").delete()


@pytest.mark.parametrize("where", ["db", "env"])
def test_task_and_dag_level_failure_alerts_with_the_connection_anywhere(
    request: pytest.FixtureRequest, sandbox: Sandbox, run: Run, where: str
) -> None:
    server = request.getfixturevalue("db_connection") if where == "db" else sandbox()
    outcome = run(f"octopods_alert_dag_level_{where}")
    assert outcome.state == "failed"
    [task_alert] = bodies(server, "+447700900123")
    assert task_alert.startswith(f"Airflow: octopods_alert_dag_level_{where}.load failed (try 1 of 1) run manual__")
    assert task_alert.endswith("RuntimeError: disk full")
    [dag_alert] = bodies(server, "+15005550100")
    assert dag_alert.startswith(f"Airflow: DAG octopods_alert_dag_level_{where} failed: task load (run manual ")


@pytest.mark.parametrize("where", ["db", "env"])
def test_retry_success_and_run_success_alerts_say_what_happened(
    request: pytest.FixtureRequest, sandbox: Sandbox, run: Run, where: str
) -> None:
    server = request.getfixturevalue("db_connection") if where == "db" else sandbox()
    outcome = run(f"octopods_alert_kinds_{where}")
    assert outcome.state == "success"
    retry, success = bodies(server, "+447700900123")
    assert retry.startswith(f"Airflow: octopods_alert_kinds_{where}.flaky failed, will retry (try 1 of 2")
    assert retry.endswith("RuntimeError: transient glitch")
    assert success.startswith(f"Airflow: octopods_alert_kinds_{where}.flaky succeeded (try 2 of 2) run manual__")
    [run_success] = bodies(server, "+15005550100")
    assert run_success.startswith(f"Airflow: DAG octopods_alert_kinds_{where} succeeded run manual__")
    assert all(len(body) <= 160 for body in (retry, success, run_success))


def test_a_literal_number_that_cannot_exist_is_an_import_error(tmp_path: Path, airflow_db: None) -> None:
    from tests.dagrun import load_dag

    (tmp_path / "bad_alerts.py").write_text(
        "from datetime import datetime\n"
        "from airflow.providers.common.compat.sdk import DAG\n"
        "from airflow_provider_octopods.notifications.octopods import OctopodsNotifier\n"
        "with DAG(dag_id='bad_alerts', start_date=datetime(2026, 1, 1), schedule=None,\n"
        "         on_failure_callback=OctopodsNotifier(phones=['12345'])):\n"
        "    pass\n"
    )
    with pytest.raises(RuntimeError, match=r"DAG import errors.*OctopodsNotifier phones: \*\*345 has no country code"):
        load_dag(tmp_path, "bad_alerts")


def airflow_dags_test(dag_id: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``airflow dags test DAG_ID`` in a child process, as a user would run it."""
    return subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "test", dag_id],
        capture_output=True,
        text=True,
        check=False,
        env=dict(os.environ, **(env or {})),
        timeout=300,
    )


def test_airflow_dags_test_with_the_connection_in_the_metadata_db(db_connection: SandboxServer) -> None:
    result = airflow_dags_test("octopods_alert_dag_level_db")
    assert "octopods_alert_dag_level_db" in result.stdout + result.stderr
    assert sorted(m.phone for m in db_connection.messages()) == ["+15005550100", "+447700900123"]
    [dag_alert] = bodies(db_connection, "+15005550100")
    assert dag_alert.startswith("Airflow: DAG octopods_alert_dag_level_db failed: task load (run manual ")


def test_connection_from_a_secrets_backend(sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = sandbox()
    monkeypatch.delenv("AIRFLOW_CONN_OCTOPODS_DEFAULT")
    connections = tmp_path / "connections.json"
    connections.write_text(
        json.dumps({"octopods_default": {"conn_type": "octopods", "host": server.url, "password": TEST_KEY}})
    )
    result = airflow_dags_test(
        "octopods_alert_dag_level_env",
        {
            "AIRFLOW__SECRETS__BACKEND": "airflow.secrets.local_filesystem.LocalFilesystemBackend",
            "AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps({"connections_file_path": str(connections)}),
        },
    )
    assert sorted(m.phone for m in server.messages()) == ["+15005550100", "+447700900123"], result.stdout[-3000:]
    assert TEST_KEY not in result.stdout + result.stderr


def test_sla_miss_callback_of_airflow_2(sandbox: Sandbox) -> None:
    from types import SimpleNamespace

    from airflow.providers.common.compat.sdk import DAG

    from airflow_provider_octopods.notifications.octopods import OctopodsNotifier

    server = sandbox()
    dag = DAG(dag_id="nightly_report", schedule=None)
    slas = [SimpleNamespace(task_id="build_report", execution_date=None)]
    # Airflow 2.11 calls sla_miss_callback(dag, task_list, blocking_task_list, slas, blocking_tis)
    OctopodsNotifier(phones="+15005550100")(dag, "build_report", "", slas, [])
    [alert] = bodies(server, "+15005550100")
    assert alert == "Airflow: DAG nightly_report missed its deadline SLA of build_report"
