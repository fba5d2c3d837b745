"""BatchRunner: the try's sends on an event loop in a helper thread, and how it stops."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from airflow_provider_octopods.api import build_send_request
from airflow_provider_octopods.api.batch import PlannedSend
from airflow_provider_octopods.batch.runner import BatchRunner
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
