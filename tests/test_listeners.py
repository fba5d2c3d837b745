"""The Airflow listeners: each hook hands its event to the module that tidies the provider's state.

What the tidying does is tested with its modules (tests/send_record/test_lifecycle.py,
tests/notifications/test_dedup.py); here, that each hook calls it with the right arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from unittest import mock

import pytest

from airflow_provider_octopods import listeners


@pytest.fixture
def run_ended(monkeypatch: pytest.MonkeyPatch) -> mock.Mock:
    called = mock.Mock()
    monkeypatch.setattr("airflow_provider_octopods.notifications.dedup.run_ended", called)
    return called


def test_a_succeeded_task_instance_has_its_send_record_deleted(monkeypatch: pytest.MonkeyPatch) -> None:
    task_succeeded = mock.Mock()
    monkeypatch.setattr("airflow_provider_octopods.send_record.task_succeeded", task_succeeded)
    ti = SimpleNamespace(dag_id="reminders", run_id="r1", task_id="send", map_index=-1)
    listeners.on_task_instance_success(previous_state="running", task_instance=ti)
    task_succeeded.assert_called_once_with(ti)


@pytest.mark.parametrize(
    ("hook", "succeeded"),
    [(listeners.on_dag_run_success, True), (listeners.on_dag_run_failed, False)],
    ids=["success", "failed"],
)
def test_an_ended_dag_run_without_a_session_has_its_ledgers_tidied_in_one_of_their_own(
    hook: Callable[..., None], succeeded: bool, run_ended: mock.Mock
) -> None:
    dag_run = SimpleNamespace(dag_id="etl", run_id="scheduled__2026-11-25")  # not a mapped object
    hook(dag_run=dag_run, msg="")
    run_ended.assert_called_once_with("etl", "scheduled__2026-11-25", None, succeeded=succeeded)


def test_an_ended_dag_run_s_ledgers_are_tidied_in_the_scheduler_s_session(run_ended: mock.Mock) -> None:
    from airflow.models.dagrun import DagRun
    from sqlalchemy.orm import Session

    dag_run = DagRun(dag_id="etl", run_id="manual__1")
    session = Session()
    session.add(dag_run)  # as the scheduler holds it: the deletes join its transaction
    listeners.on_dag_run_failed(dag_run=dag_run, msg="task_failure")
    run_ended.assert_called_once_with("etl", "manual__1", session, succeeded=False)


def test_ids_are_handed_on_as_text(run_ended: mock.Mock) -> None:
    listeners.on_dag_run_success(dag_run=SimpleNamespace(dag_id=7, run_id=8), msg="")
    run_ended.assert_called_once_with("7", "8", None, succeeded=True)
