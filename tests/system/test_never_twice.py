"""Issue 9 §2-3: an SMS is sent once per task instance whatever Airflow does with the task."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest

from airflow_provider_octopods.sandbox import SandboxServer
from tests.conftest import DAGS_FOLDER
from tests.dagrun import RunOutcome, load_dag, octopods_variables

AIRFLOW_2 = __import__("airflow").__version__.startswith("2.")

Run = Callable[..., RunOutcome]
Sandbox = Callable[..., SandboxServer]


def sends(server: SandboxServer) -> int:
    return sum(r.method == "POST" for r in server.requests())


@pytest.mark.parametrize(
    "fault", ["http_500", "http_502", "http_500_after", "http_502_after", "malformed", "reset_after"]
)
def test_ambiguous_first_send_is_not_retried_by_airflow(sandbox: Sandbox, run: Run, fault: str) -> None:
    server = sandbox(faults=(f"{fault}:@1:send",))
    outcome = run("octopods_ambiguous_retries")
    assert outcome.state == "failed"
    assert outcome.tries["send"] == 1  # retries=2, none used
    assert sends(server) == 1
    # the *_after faults, malformed and reset_after are processed first: the API has the message
    assert len(server.messages()) == (0 if fault in ("http_500", "http_502") else 1)


def test_deferral_timeout_then_retry_does_not_send_again(sandbox: Sandbox, run: Run) -> None:
    server = sandbox()
    outcome = run("octopods_deferral_timeout_retry")
    assert outcome.state == "failed"
    assert outcome.tries["send"] == 2  # the deadline let Airflow retry; the retry only tracked
    assert len(server.messages()) == 1
    assert sends(server) == 1


def test_execution_timeout_while_waiting_then_retry_does_not_send_again(sandbox: Sandbox, run: Run) -> None:
    server = sandbox()
    if AIRFLOW_2:
        # 2.11's dag.test lets the timeout (a BaseException there) escape instead of retrying; run
        # the task of the same DAG run again in a new process, as a retry on another worker would.
        from airflow.exceptions import AirflowTaskTimeout
        from airflow.utils import timezone  # type: ignore[attr-defined]

        dag = load_dag(DAGS_FOLDER, "octopods_execution_timeout_retry")
        logical_date = timezone.utcnow()
        with pytest.raises(AirflowTaskTimeout):
            dag.test(execution_date=logical_date)
        again = subprocess.run(
            [sys.executable, "-m", "airflow", "tasks", "test", dag.dag_id, "send", logical_date.isoformat()],
            capture_output=True,
            text=True,
            check=False,
        )
        assert "Not sending to +1*******103 again" in again.stdout + again.stderr
    else:
        outcome = run("octopods_execution_timeout_retry")
        assert outcome.state == "failed"
        assert outcome.tries["send"] == 2
    assert sends(server) == 1


def test_unknown_outcome_of_an_earlier_try_fails_without_sending(
    sandbox: Sandbox, run: Run, read_logs: Callable[[], str]
) -> None:
    server = sandbox()
    outcome = run("octopods_unknown_outcome")
    assert outcome.task_states["send"] == "failed"
    assert outcome.tries["send"] == 1
    assert sends(server) == 0
    logs = read_logs()
    assert "outcome is unknown" in logs
    assert "resend_unknown=True" in logs


def test_unknown_outcome_with_resend_unknown_sends_once_more(sandbox: Sandbox, run: Run) -> None:
    server = sandbox()
    outcome = run("octopods_unknown_outcome_resend")
    assert outcome.state == "success", outcome.task_states
    assert sends(server) == 1
    assert octopods_variables() == []


def test_hook_loop_crashing_after_its_sends_is_retried_without_resending(sandbox: Sandbox, run: Run) -> None:
    server = sandbox()
    phones = ["+15005550100", "+447700900123", "+15551234567", "+15005550100"]
    outcome = run("octopods_hook_loop", {"phones": phones, "crash_after_sending": True})
    assert outcome.state == "success", outcome.task_states
    assert outcome.tries["remind_all"] == 2
    assert [m.phone for m in server.messages()] == phones  # the repeated recipient had another text
    assert outcome.xcom("remind_all") == [m.message_id for m in server.messages()]
    assert octopods_variables() == []


PHONES = [f"+1555{n:07d}" for n in range(1, 61)]


def test_hook_loop_stopped_by_a_lasting_503_resumes_without_duplicates(sandbox: Sandbox, run: Run) -> None:
    server = sandbox(faults=("http_503:@30,31,32,33:send",))  # outlasts the 4 tries inside the call
    outcome = run("octopods_hook_loop", {"phones": PHONES})
    assert outcome.state == "success", outcome.task_states
    assert outcome.tries["remind_all"] == 2
    assert sorted(m.phone for m in server.messages()) == sorted(PHONES)
    assert server.duplicates() == 0
    assert octopods_variables() == []


def test_hook_loop_stopped_by_an_invalid_number_sends_nobody_twice(sandbox: Sandbox, run: Run) -> None:
    server = sandbox()
    outcome = run("octopods_hook_loop", {"phones": [*PHONES[:20], "+1555CALLNOW"]})
    assert outcome.state == "failed"
    assert outcome.tries["remind_all"] == 1  # bad input: Airflow does not retry
    assert len(server.messages()) == 20
    assert server.duplicates() == 0


def test_successful_runs_leave_no_octopods_variables(sandbox: Sandbox, run: Run) -> None:
    sandbox()
    for dag_id in ("example_octopods_send_and_track", "octopods_send_wait", "octopods_deferrable"):
        assert run(dag_id, {"phone": "+15005550100"}).state == "success"
    assert octopods_variables() == []


@pytest.mark.parametrize("mode", ["classic", "deferrable"])
def test_min_delivered_ratio_gives_the_same_outcome_in_both_modes(sandbox: Sandbox, run: Run, mode: str) -> None:
    sandbox()
    outcome = run(f"octopods_ratio_{mode}")
    assert outcome.state == "success", outcome.task_states
    summary = outcome.xcom("track")
    assert (summary["outcome"], len(summary["delivered"]), summary["total"]) == ("success", 2, 3)
    assert len(summary["pending"]) == 1  # the never-delivered one did not hold the sensor to its timeout
