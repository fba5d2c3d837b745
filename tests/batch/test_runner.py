"""BatchRunner: the try's sends on an event loop in a helper thread, and how it stops."""

from __future__ import annotations

import gc
import logging
from typing import Any

import pytest

from airflow_provider_octopods.api import build_send_request
from airflow_provider_octopods.api.batch import PlannedSend
from airflow_provider_octopods.batch.runner import YOUNG_OBJECTS, BatchRunner, LongLivedObjectsFrozen
from airflow_provider_octopods.hooks.octopods import OctopodsHook
from airflow_provider_octopods.sandbox import SandboxServer
from airflow_provider_octopods.send_record import MemoryStore, SendGuard, TaskKey
from tests.conftest import TEST_KEY

MAX_IN_FLIGHT = 4


@pytest.fixture
def server(octopods_sandbox_factory: Any, monkeypatch: pytest.MonkeyPatch) -> SandboxServer:
    sandbox: SandboxServer = octopods_sandbox_factory()
    monkeypatch.setenv("AIRFLOW_CONN_OCTOPODS_DEFAULT", sandbox.connection_json(TEST_KEY))
    return sandbox


def test_a_task_that_lost_its_supervisor_starts_no_request_after_those_in_flight(server: SandboxServer) -> None:
    guard = SendGuard(TaskKey("d", "r", "remind"), try_number=1, store=MemoryStore())
    sends = [PlannedSend(n + 1, build_send_request(f"+4477009004{n:02d}", "Hi")) for n in range(60)]
    todo = [(guard.slot(send.request, 1), send) for send in sends]
    runner = BatchRunner(
        OctopodsHook(), rate_limit=50, max_in_flight=MAX_IN_FLIGHT, chunk_size=10, log=logging.getLogger("t")
    )
    settled: list[Any] = []
    started_before_the_loss: list[int] = []

    def settle(outcome: Any) -> None:
        settled.append(outcome)

    def supervisor_alive() -> bool:
        if len(settled) < 10:
            return True
        if not started_before_the_loss:
            started_before_the_loss.append(len(server.requests()))  # the worker dies now
        return False

    runner.supervisor_alive = supervisor_alive
    runner.run(todo, guard, len(sends), settle)
    assert runner.stopped
    assert started_before_the_loss
    assert len(server.requests()) <= started_before_the_loss[0] + MAX_IN_FLIGHT
    assert len(server.messages()) < len(sends)
    assert server.duplicates() == 0


def test_progress_lines_count_the_held_rows_and_say_when_the_next_is_due() -> None:
    from datetime import datetime, timezone

    from airflow_provider_octopods.batch.runner import Progress

    lines: list[str] = []

    class Log:
        def info(self, message: str, *args: Any) -> None:
            lines.append(message % args)

    next_at = datetime(2026, 12, 8, 8, 0, tzinfo=timezone.utc)
    Progress(Log(), 10, 6, 0.0, held=4, next_at=next_at).log(3)
    Progress(Log(), 10, 10, 0.0).log(10)
    assert "(10 in the batch; 4 held for their send time or window, the next at 2026-12-08 08:00 UTC)" in lines[0]
    assert "(10 in the batch)," in lines[1]


def test_collections_are_fewer_while_a_batch_runs_and_all_is_given_back_even_after_an_error() -> None:
    threshold = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError), LongLivedObjectsFrozen():  # noqa: PT012 (the checks run inside)
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (max(YOUNG_OBJECTS, threshold[0]), *threshold[1:])
        raise RuntimeError("the batch failed")
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == threshold


def test_where_an_executor_froze_its_objects_the_batch_freezes_its_own_and_leaves_them_frozen() -> None:
    """A task process forked by the LocalExecutor or Celery inherits their frozen objects: the batch
    still freezes its own and collects the youngest generation less often, and unfreezes nothing
    (that would give the executor's objects back as well)."""
    threshold = gc.get_threshold()
    gc.freeze()
    try:
        before = gc.get_freeze_count()
        alive: list[list[int]] = [[] for _ in range(100)]  # tracked by the collector, as lists are
        with LongLivedObjectsFrozen():
            assert gc.get_freeze_count() >= before + 100
            assert gc.get_threshold()[0] == max(YOUNG_OBJECTS, threshold[0])
        assert gc.get_freeze_count() >= before + 100
        assert gc.get_threshold() == threshold
        del alive
    finally:
        gc.unfreeze()


def test_a_process_that_turned_automatic_collection_off_keeps_it_off() -> None:
    threshold = gc.get_threshold()
    gc.set_threshold(0)
    try:
        with LongLivedObjectsFrozen():
            assert gc.get_threshold()[0] == 0
        assert gc.get_threshold()[0] == 0
    finally:
        gc.set_threshold(*threshold)
