"""The alert ledger's election and bookkeeping, with an in-memory stand-in for Variables."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from airflow_provider_octopods.notifications import dedup
from airflow_provider_octopods.notifications.dedup import RunLedger
from tests.notifications.conftest import Variables


@pytest.fixture
def store(variables: Variables, monkeypatch: pytest.MonkeyPatch) -> Variables:
    monkeypatch.setattr(dedup, "SETTLE_SECONDS", 0.2)
    return variables


def test_simultaneous_failures_elect_one_leader_who_names_them_all(store: Variables) -> None:
    leaders: list[list[str]] = []
    barrier = threading.Barrier(5)

    def fail(task: str) -> None:
        ledger = RunLedger("etl", "run-1", window=30, gather=1.5)
        barrier.wait()
        if ledger.claim(task):
            leaders.append(ledger.take_unreported())

    threads = [threading.Thread(target=fail, args=(f"t{n}",)) for n in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(leaders) == 1
    assert sorted(leaders[0]) == ["t0", "t1", "t2", "t3", "t4"]


def test_later_failures_are_named_by_the_next_window_or_the_dag_level_alert(store: Variables) -> None:
    clock = [1000.0]

    def ledger() -> RunLedger:
        return RunLedger("etl", "run-2", window=60, gather=0, clock=lambda: clock[0], sleep=lambda _: None)

    first = ledger()
    assert first.claim("a")
    assert first.take_unreported() == ["a"]
    clock[0] += 10
    assert not ledger().claim("b")
    assert not ledger().claim("c")
    clock[0] += 100  # the window is over
    late = ledger()
    assert late.claim("d")
    assert late.take_unreported() == ["b", "c", "d"]
    assert not ledger().claim("e")
    assert ledger().take_unreported(wait=False) == ["e"]  # what a DAG-level callback names
    assert ledger().take_unreported(wait=False) == []


def test_runs_do_not_share_a_ledger(store: Variables) -> None:
    assert RunLedger("etl", "run-a", 60, 0, sleep=lambda _: None).claim("x")
    assert RunLedger("etl", "run-b", 60, 0, sleep=lambda _: None).claim("x")
    assert RunLedger("etl", "run-a", 60, 0).key != RunLedger("etl", "run-b", 60, 0).key


def test_each_audience_keeps_its_own_ledger_and_the_run_prefix_finds_them() -> None:
    from airflow_provider_octopods.notifications.dedup import run_prefix

    team_a = RunLedger("etl", "run-a", 60, 0, audience="+15005550100")
    team_b = RunLedger("etl", "run-a", 60, 0, audience="+447700900123")
    assert team_a.key != team_b.key
    assert team_a.key.startswith(run_prefix("etl", "run-a"))
    assert team_b.key.startswith(run_prefix("etl", "run-a"))
    assert not RunLedger("etl", "run-b", 60, 0, audience="+15005550100").key.startswith(run_prefix("etl", "run-a"))


def late_failure_context(dag: Any, run_state: str, task_id: str = "late") -> dict[str, Any]:
    from types import SimpleNamespace

    class TaskInstance(SimpleNamespace):
        def get_dagrun_state(self, dag_id: str, run_id: str) -> str:  # as Airflow 3's RuntimeTaskInstance
            return run_state

    ti = TaskInstance(dag_id="etl", task_id=task_id, run_id="r1", try_number=1, max_tries=0, state="failed")
    dag_run = SimpleNamespace(dag_id="etl", run_id="r1")
    return {"ti": ti, "task_instance": ti, "dag": dag, "dag_run": dag_run, "run_id": "r1", "exception": KeyError("x")}


@pytest.mark.parametrize("run_state", ["running", "failed"])
def test_a_late_failure_is_left_to_the_dag_level_alert_only_while_the_run_goes_on(
    store: Variables, octopods_conn: str, requests_mock: Any, run_state: str
) -> None:
    from types import SimpleNamespace

    from airflow_provider_octopods.notifications.octopods import OctopodsNotifier

    requests_mock.post("https://app.octopods.io/api/v1/sms/messages", status_code=201, json={"message_id": 1})
    notifier = OctopodsNotifier(phones="+15005550100", dedup_window=8)
    dag = SimpleNamespace(dag_id="etl", on_failure_callback=[OctopodsNotifier(phones="+15005550100", dedup_window=8)])
    notifier(late_failure_context(dag, run_state, "first"))
    assert requests_mock.call_count == 1
    notifier(late_failure_context(dag, run_state, "late"))
    if run_state == "running":  # the DAG-level alert, still to come, names it
        assert requests_mock.call_count == 1
        assert len(ledgers(store)) == 1
    else:  # the run ended (its DAG-level alert may be gone): alert now and leave no ledger behind
        assert requests_mock.call_count == 2
        assert requests_mock.last_request.json()["body"].startswith("Airflow: etl.late failed (try 1 of 1) run r1")
        assert ledgers(store) == []


def ledgers(store: Variables) -> list[str]:
    """The run ledgers in ``store``, without the once-per-try marks (the listener deletes those)."""
    return [key for key in store.values if "_once_" not in key]


def test_a_run_that_succeeds_after_a_failure_drops_its_ledger_and_logs_the_names(
    store: Variables, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json
    from types import SimpleNamespace

    ledger = RunLedger("etl", "r9", window=60, gather=0.1)
    ledger._write({"since": 1.0, "leader": "x", "gathered": "x", "failed": ["a", "late"], "reported": ["a"]})
    rows = [SimpleNamespace(key=ledger.key, val=json.dumps(store_value)) for store_value in [ledger._read()]]
    deleted: list[Any] = []

    class Query:
        def filter(self, *args: Any) -> Query:
            return self

        def all(self) -> list[Any]:
            return rows

    session = SimpleNamespace(query=lambda model: Query(), delete=deleted.append)
    dedup.run_ended("etl", "r9", session, succeeded=False)
    assert deleted == []  # a failed run: the DAG-level alert still names "late"
    with caplog.at_level("ERROR"):
        dedup.run_ended("etl", "r9", session, succeeded=True)
    assert deleted == rows
    assert "Failed tasks named in no Octopods alert" in caplog.text
    assert "late" in caplog.text


def test_a_run_end_also_sweeps_once_marks_that_outlived_their_own_run() -> None:
    """A failure callback that ran after its run ended (the dag-processor runs a dead worker's
    callbacks late) leaves its once-per-try mark behind; the next run end of any DAG deletes it
    once it is an hour old."""
    import json
    import time
    from types import SimpleNamespace

    this_run = dedup.run_prefix("etl", "r1")
    other_run = dedup.run_prefix("etl", "r0")
    rows = [
        SimpleNamespace(key=f"{other_run}once_old", val=json.dumps({"once": "t", "at": time.time() - 7200})),
        SimpleNamespace(key=f"{other_run}once_new", val=json.dumps({"once": "t", "at": time.time() - 60})),
        SimpleNamespace(key=f"{this_run}once_mine", val=json.dumps({"once": "t", "at": time.time()})),
    ]
    deleted: list[Any] = []

    class Query:
        def __init__(self) -> None:
            self.pattern = ""

        def filter(self, clause: Any) -> Query:
            self.pattern = str(clause.right.value)
            return self

        def all(self) -> list[Any]:
            prefix = self.pattern.split("%")[0]
            return [row for row in rows if row.key.startswith(prefix)]

    session = SimpleNamespace(query=lambda model: Query(), delete=deleted.append)
    dedup.run_ended("etl", "r1", session)
    assert [row.key for row in deleted] == [f"{other_run}once_old", f"{this_run}once_mine"]
