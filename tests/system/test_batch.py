"""The batch operator inside real Airflow (dag.test), against the sandbox as a real server."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest

from airflow_provider_octopods.sandbox import SandboxServer
from tests.conftest import DAGS_FOLDER, TEST_KEY
from tests.dagrun import RunOutcome, load_dag, octopods_variables
from tests.dags.octopods_batch_dags import probe_rows, reminder_rows

AIRFLOW_2 = __import__("airflow").__version__.startswith("2.")
ARRIVAL_BUNCHING_ALLOWED = 20  # 50 ms of requests at 400 a second

Run = Callable[..., RunOutcome]
Sandbox = Callable[..., SandboxServer]


def test_a_thousand_reminders_with_invalid_duplicate_and_opted_out_rows(sandbox: Sandbox, run: Run) -> None:
    server = sandbox()
    outcome = run("octopods_batch_counts")
    assert outcome.task_states["remind"] == "success"
    report = outcome.xcom("remind")
    assert {k: report[k] for k in ("total", "accepted", "invalid", "duplicate", "opted_out", "failed", "unknown")} == {
        "total": 1000,
        "accepted": 940,
        "invalid": 30,
        "duplicate": 20,
        "opted_out": 10,
        "failed": 0,
        "unknown": 0,
    }
    expected = {r["phone"] for r in reminder_rows()[30:980]} - {f"+447700900{n:03d}" for n in range(200, 210)}
    received = [m.phone if m.phone.startswith("+") else f"+{m.phone}" for m in server.messages()]
    assert sorted(received) == sorted(expected)  # the valid unique set, once each
    assert server.duplicates() == 0
    # Paced at 400/s (unpaced, all 940 arrive within one second). The sandbox runs in this process:
    # a pause of the whole process (a GC pass, a busy CI machine) holds back requests already sent,
    # and its clock then sees them arrive together. The one-second guarantee on the starts is
    # proven in tests/api/test_pacing.py; here, arrivals may bunch by up to 50 ms of them.
    assert server.stats()["peak_requests_per_second"] <= 400 + ARRIVAL_BUNCHING_ALLOWED
    assert report["segments"] == 940  # one GSM-7 segment each
    assert sorted(report["message_ids"]) == sorted(m.message_id for m in server.messages())
    rows = {r["row"]: r for r in report["rows"]}
    assert rows[1]["outcome"] == "invalid"
    assert rows[1]["error"].startswith("phone: ")
    assert rows[11]["error"] == "phone: is missing"
    assert rows[21]["outcome"] == "invalid"
    assert "body: does not render" in rows[21]["error"]
    assert rows[21]["phone"] == "+44*******020"  # masked
    assert rows[981]["outcome"] == "duplicate"
    assert rows[201]["outcome"] == "opted_out"
    body = next(m.body for m in server.messages() if m.phone.endswith("447700900500"))
    assert body == "Hi Patient 500, your appointment is on Tue 10:00. Reply STOP to opt out."
    assert octopods_variables() == []  # the send record went with the task's success


def test_a_dry_run_sends_nothing_and_estimates_the_cost(sandbox: Sandbox, run: Run) -> None:
    server = sandbox()
    report = run("octopods_batch_dry_run").xcom("remind")
    assert server.requests() == []
    assert report["dry_run"] is True
    assert (report["planned"], report["segments"], report["invalid"]) == (940, 940, 30)
    assert report["samples"][0]["phone"] == "+44*******030"
    assert report["samples"][0]["body"].startswith("Hi Patient 30, your appointment")


def test_a_batch_cut_short_by_its_timeout_resumes_on_retry_without_sending_twice(sandbox: Sandbox, run: Run) -> None:
    server = sandbox()
    if AIRFLOW_2:
        # 2.11's dag.test lets the timeout (a BaseException there) escape instead of retrying; run
        # the task of the same DAG run again in new processes, as retries on other workers would.
        from airflow.exceptions import AirflowTaskTimeout
        from airflow.utils import timezone  # type: ignore[attr-defined]

        dag = load_dag(DAGS_FOLDER, "octopods_batch_resume")
        logical_date = timezone.utcnow()
        with pytest.raises(AirflowTaskTimeout):
            dag.test(execution_date=logical_date)
        logs = ""
        for _ in range(5):
            sent_before = len(server.messages())
            assert 0 < sent_before < 300 or logs
            again = subprocess.run(
                [sys.executable, "-m", "airflow", "tasks", "test", dag.dag_id, "remind", logical_date.isoformat()],
                capture_output=True,
                text=True,
                check=False,
            )
            logs += again.stdout + again.stderr
            if "Batch done" in again.stdout + again.stderr:
                break
        assert f"Resuming: {sent_before} sent by an earlier try or run, 0 with an unknown outcome" in logs
        assert "Batch done: 300 accepted" in logs
    else:
        outcome = run("octopods_batch_resume")
        assert outcome.task_states["remind"] == "success"
        assert outcome.tries["remind"] >= 2  # the first try was cut short
        report = outcome.xcom("remind")
        assert report["accepted"] == 300
        # The last try that sends may finish its sends and still be cut short before it returns
        # (seen in CI: done 8 ms before its timeout); the next then finds all 300 accepted earlier.
        # Either way more than one try sent (at 60/s one 2 s try cannot send 300), and nothing
        # went out twice (below).
        assert 0 < report["accepted_earlier"] <= 300
        assert report["unknown"] == 0  # the timeout stopped the batch cleanly: nothing in doubt
    assert len(server.messages()) == 300
    assert len({m.phone for m in server.messages()}) == 300
    assert server.duplicates() == 0


def test_faults_and_a_429_storm_slow_the_batch_and_only_after_processing_faults_end_unknown(
    sandbox: Sandbox, run: Run
) -> None:
    server = sandbox(
        rate_limit=40,
        # early, inside the sandbox's first burst, so that no 429 answers in place of a fault
        faults=("http_503:@3,12:send", "reset_before:@6,15:send", "reset_after:@2,5,8:send"),
    )
    outcome = run("octopods_batch_faults")
    assert outcome.task_states["remind"] == "success"
    report = outcome.xcom("remind")
    stats = server.stats()
    assert stats["answers"].get("429", 0) > 0  # the storm happened
    assert stats["faults"] == {"http_503": 2, "reset_before": 2, "reset_after": 3}
    # A reset looks the same to the client whether the server processed the request or not, so
    # both kinds are unknown outcomes, reported and never re-sent; a 503 (nothing processed) is retried.
    assert report["unknown"] == 5
    assert report["failed"] == 0
    assert report["accepted"] == 195
    assert len(server.messages()) == 198  # 195 accepted + the 3 reset_after ones, once each
    assert server.duplicates() == 0
    unknown_rows = set(report["unknown_rows"])
    accepted_rows = {r["row"] for r in report["rows"] if r["outcome"] == "accepted"}
    assert len(unknown_rows) == 5
    assert not unknown_rows & accepted_rows
    assert all(r["error"] for r in report["rows"] if r["outcome"] == "unknown")  # says why, for a human


def test_the_reminders_example_sends_tracks_through_a_real_deferral_and_summarises(sandbox: Sandbox, run: Run) -> None:
    server = sandbox()
    outcome = run("example_octopods_reminders")
    assert outcome.state == "success"
    report = outcome.xcom("send_reminders")
    assert (report["accepted"], report["invalid"], report["duplicate"]) == (3, 1, 1)
    assert sorted(m.phone.lstrip("+") for m in server.messages()) == ["15005550100", "442079460958", "447700900123"]
    delivery = outcome.xcom("wait_for_delivery")
    assert sorted(delivery["delivered"]) == sorted(report["message_ids"])
    assert outcome.xcom("summary") == "3 sent, 1 invalid, 1 duplicate, 0 opted out; 3 delivered"


def test_a_mapped_batch_sends_each_list_once_and_stores_counts_as_rendered_fields(sandbox: Sandbox, run: Run) -> None:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.utils.session import create_session

    server = sandbox()
    outcome = run("octopods_batch_mapped")
    assert outcome.state == "success"
    assert len(server.messages()) == 6
    assert server.duplicates() == 0
    with create_session() as session:
        rows = (
            session.query(RenderedTaskInstanceFields)
            .filter_by(dag_id="octopods_batch_mapped", run_id=outcome.run_id, task_id="remind")
            .all()
        )
    assert sorted(r.map_index for r in rows) == [0, 1]
    for row in rows:
        assert row.rendered_fields["recipients"] == "3 recipients (list)"  # no phone number stored


def test_rows_are_sent_as_text_never_rendered_nor_logged(
    sandbox: Sandbox, run: Run, read_logs: Callable[[], str]
) -> None:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.utils.session import create_session

    server = sandbox()
    outcome = run("octopods_batch_rows_are_data")
    assert outcome.state == "success"  # a row holding a bare "{{" used to fail the render
    rows = probe_rows(0) + probe_rows(10) + probe_rows(20) + probe_rows(30)  # literal, XComArg, mapped x2
    received = {m.phone.lstrip("+"): m.body for m in server.messages()}
    assert received == {row["phone"].lstrip("+"): f"Hi {row['name']}" for row in rows}
    assert received["447700902000"] == "Hi {{ conn.octopods_default.password }}"
    assert not [body for body in received.values() if TEST_KEY in body]
    logs = read_logs()
    assert "Batch done: 3 accepted" in logs  # the capture did see the task logs
    assert not [phone for phone in received if phone in logs]
    with create_session() as session:
        stored = (
            session.query(RenderedTaskInstanceFields)
            .filter_by(dag_id="octopods_batch_rows_are_data", run_id=outcome.run_id)
            .all()
        )
    shown = [r.rendered_fields["recipients"] for r in stored if r.task_id in ("literal", "from_upstream", "mapped")]
    assert shown == ["3 recipients (list)"] * 4  # the rendered-fields table holds no row
