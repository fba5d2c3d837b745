"""The example DAGs the docs include for mapped sends, mapped batches and alert policies, run
inside real Airflow (dag.test) against the sandbox as a real server: what each sends, once."""

from __future__ import annotations

import asyncio
import csv
import importlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_octopods.sandbox import SandboxServer
from airflow_provider_octopods.send_record.campaign import CAMPAIGN_PREFIX
from tests.conftest import DAGS_FOLDER
from tests.dagrun import RunOutcome, load_dag, octopods_variables

Run = Callable[..., RunOutcome]
Sandbox = Callable[..., SandboxServer]


def mapped_xcoms(dag_id: str, run_id: str, task_id: str) -> dict[int, Any]:
    """``{map_index: return value}`` of a mapped task (RunOutcome keeps one value per task id)."""
    from airflow.utils.session import create_session

    xcom_module: Any = importlib.import_module("airflow.models.xcom")
    query = {"run_id": run_id, "dag_ids": dag_id, "task_ids": task_id, "key": "return_value"}
    with create_session() as session:
        if hasattr(xcom_module, "XComModel"):  # Airflow 3
            model = xcom_module.XComModel
            rows = list(session.scalars(model.get_many(**query)))
            return {r.map_index: model.deserialize_value(r) for r in rows}
        rows = xcom_module.XCom.get_many(session=session, **query).all()
        return {r.map_index: r.value for r in rows}


# --- docs/sending-and-tracking.rst: example_octopods_mapped_sends -------------------------------


def test_mapped_sends_text_each_recipient_once_and_one_sensor_tracks_every_id(sandbox: Sandbox, run: Run) -> None:
    server = sandbox()
    outcome = run("example_octopods_mapped_sends")
    assert outcome.state == "success"
    assert outcome.task_states == {"remind": "success", "track_reminders": "success"}
    messages = server.messages()
    assert sorted(m.phone for m in messages) == ["+15005550100", "+447700900123"]
    assert {m.body for m in messages} == {"See you tomorrow at the Elm Street clinic."}
    assert server.duplicates() == 0
    sent = mapped_xcoms("example_octopods_mapped_sends", outcome.run_id, "remind")
    assert sorted(sent) == [0, 1]  # one task instance per recipient
    ids = sorted(str(m.message_id) for m in messages)
    assert sorted(str(v) for v in sent.values()) == ids
    summary = outcome.xcom("track_reminders")
    assert (summary["outcome"], summary["total"]) == ("success", 2), summary
    assert sorted(str(i) for i in summary["delivered"]) == ids


# --- docs/million-a-day.rst: example_octopods_mapped_batches ------------------------------------


@pytest.fixture
def channel_pool(airflow_db: None) -> Iterator[None]:
    """The one-slot pool the example's docstring asks for; campaigns deleted after, as their expiry would."""
    from airflow.models import Variable
    from airflow.models.pool import Pool
    from airflow.utils.session import create_session

    Pool.create_or_update_pool(
        name="octopods_main_channel", slots=1, description="one batch at a time", include_deferred=False
    )
    yield
    with create_session() as session:
        session.query(Variable).filter(Variable.key.startswith(CAMPAIGN_PREFIX)).delete(synchronize_session=False)


def report_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as report:
        return list(csv.DictReader(report))


def test_mapped_batches_send_every_row_once_in_chunks_and_a_rerun_sends_nothing_again(
    sandbox: Sandbox, run: Run, channel_pool: None, tmp_path: Path
) -> None:
    dag_id = "example_octopods_mapped_batches"
    server = sandbox()
    first = run(dag_id, {"chunk_size": 10, "report_dir": str(tmp_path)})
    assert first.state == "success"
    chunks = mapped_xcoms(dag_id, first.run_id, "remind")
    assert sorted(chunks) == [0, 1, 2]  # 25 rows in chunks of 10: 10, 10 and 5
    assert [(chunks[i]["total"], chunks[i]["accepted"], chunks[i]["accepted_earlier"]) for i in range(3)] == [
        (10, 10, 0),
        (10, 10, 0),
        (5, 5, 0),
    ]
    messages = server.messages()
    assert sorted(m.phone for m in messages) == [f"+447700908{n:03d}" for n in range(25)]  # each row once
    assert server.duplicates() == 0
    assert {m.body for m in messages if m.phone == "+447700908007"} == {"Hi Patient 7, see you tomorrow at 10:00."}
    [day] = [p for p in tmp_path.iterdir() if p.is_dir()]  # {{ ds }}
    assert sorted(p.name for p in day.iterdir()) == ["reminders-0.csv", "reminders-1.csv", "reminders-2.csv"]
    assert [len(report_rows(day / f"reminders-{i}.csv")) for i in range(3)] == [10, 10, 5]
    assert sorted(chunks[2]["message_ids"]) == sorted(m.message_id for m in messages if m.phone >= "+447700908020")

    # Triggered again the same day, chunked differently (the default chunk size: one chunk of 25):
    # the campaign gives back the earlier message ids and sends nothing.
    again = run(dag_id, {"report_dir": str(tmp_path)})
    assert again.state == "success"
    assert again.run_id != first.run_id
    [chunk] = mapped_xcoms(dag_id, again.run_id, "remind").values()
    assert (chunk["total"], chunk["accepted"], chunk["accepted_earlier"]) == (25, 25, 25)
    assert sorted(chunk["message_ids"]) == sorted(m.message_id for m in messages)
    assert len(server.messages()) == 25
    assert server.duplicates() == 0


# --- docs/failure-alerts.rst: example_octopods_alert_policies -----------------------------------


def test_alert_policies_text_a_retry_then_one_alert_and_the_run_alert_naming_the_rest(
    sandbox: Sandbox, run: Run
) -> None:
    dag_id = "example_octopods_alert_policies"
    server = sandbox()
    outcome = run(dag_id)
    assert outcome.state == "failed"
    assert outcome.task_states == {
        "extract": "success",
        "load_orders": "failed",
        "load_customers": "failed",
        "load_invoices": "failed",
    }
    assert outcome.tries["extract"] == 2
    retry, first_failure, run_alert = [m.body for m in server.sent_to("+15005550100")]
    assert len(server.messages()) == 3  # five without dedup_window: three task alerts, not one
    assert retry.startswith(f"Airflow: {dag_id}.extract failed, will retry (try 1 of 3")
    assert ": ConnectionError: orders API" in retry  # the cause, shortened to keep one SMS
    assert first_failure.startswith(f"Airflow: {dag_id}.load_")
    assert " failed (try 1 of 1) run manual__" in first_failure
    assert ": RuntimeError: warehouse refused the " in first_failure
    first_load = first_failure.split(".")[1].split()[0]
    assert run_alert.startswith(f"Airflow: DAG {dag_id} failed: tasks ")
    named = run_alert.split("failed: tasks ")[1].split(" (run ")[0].split(", ")
    assert sorted(named) == ["load_customers", "load_invoices", "load_orders"]  # every failed task, by name
    assert named[-1] == first_load  # the one alerted already comes last
    assert all(len(body) <= 160 for body in (retry, first_failure, run_alert))
    assert octopods_variables() == []  # the run's alert ledger went with the run


def test_alert_policies_deadline_alert_sends_from_airflows_own_callback_trigger(sandbox: Sandbox) -> None:
    """A real deadline fires in the scheduler and the triggerer (tests/e2e/test_alerts.py); here the
    example's own ``DeadlineAlert`` runs through Airflow's ``CallbackTrigger`` as the triggerer runs it."""
    dag = load_dag(DAGS_FOLDER, "example_octopods_alert_policies")
    try:
        callback_trigger = importlib.import_module("airflow.triggers.callback").CallbackTrigger
    except ImportError:  # Airflow 2.11: no deadline alerts, and the example parses without one
        assert getattr(dag, "deadline", None) is None
        return
    [deadline] = dag.deadline if isinstance(dag.deadline, list) else [dag.deadline]
    assert deadline.reference.__class__.__name__.endswith("DagRunQueuedAtDeadline")
    assert deadline.interval.total_seconds() == 1800
    assert deadline.callback.path == "airflow_provider_octopods.notifications.octopods.OctopodsNotifier"
    server = sandbox()
    context = {
        "dag_run": {"dag_id": dag.dag_id, "dag_run_id": "scheduled__2026-11-25T06:00:00+00:00", "state": "running"},
        "deadline": {"id": "d1", "deadline_time": "2026-11-25T06:30:00+00:00"},
    }
    trigger = callback_trigger(deadline.callback.path, {**deadline.callback.kwargs, "context": context})

    async def events() -> list[Any]:
        return [event async for event in trigger.run()]

    *_, last = asyncio.run(events())
    assert last.payload["state"] == "success", last.payload
    [alert] = [m.body for m in server.sent_to("+15005550100")]
    assert alert.startswith(f"Airflow: DAG {dag.dag_id} run scheduled__2026-11-25T06:00:00+00:00 missed its deadline")
    assert "(due 2026-11-25 06:30 UTC" in alert
