"""Two tries of one task instance running at once never send a row twice.

Airflow can give a try up (lost heartbeats) while it still runs and start the next one. Here try 1
of a batch is held at the worst moments, with its intents written, while try 2 runs from start to
end; then try 1 goes on, and a third try reads what both recorded. The record lives in real
Airflow Variables of the session's metadata DB, and the sends go to the sandbox over HTTP.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_octopods.clients.aio import AsyncOctopodsClient
from airflow_provider_octopods.operators.octopods import OctopodsSendBatchOperator
from airflow_provider_octopods.sandbox import SandboxServer
from airflow_provider_octopods.send_record import VariableStore

ROWS = [{"phone": f"+4477009003{n:02d}", "name": f"P{n}"} for n in range(6)]
WAIT = 60.0


class TaskInstance(SimpleNamespace):
    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def context(try_number: int) -> dict[str, Any]:
    ti = TaskInstance(dag_id="overlap", run_id="manual__1", task_id="remind", map_index=-1, try_number=try_number)
    ti.pushed = {}
    return {"ti": ti, "task_instance": ti, "params": {}}


def batch(store: Any) -> OctopodsSendBatchOperator:
    return OctopodsSendBatchOperator(
        task_id="remind",
        recipients=ROWS,
        body="Hi {{ recipient.name }}",
        max_in_flight=1,
        chunk_size=1,
        max_failure_ratio=1.0,
        record_store=store,
    )


class HeldAfterIntents(VariableStore):
    """Try 1's store: its first write of intents completes, then try 1 is held there."""

    def __init__(self, held: threading.Event, release: threading.Event) -> None:
        self.held, self.release = held, release

    def save(self, key: str, value: dict[str, Any], *, description: str) -> None:
        super().save(key, value, description=description)
        if not self.held.is_set() and "intent" in repr(value):
            self.held.set()
            assert self.release.wait(WAIT)


def hold_first_send(monkeypatch: pytest.MonkeyPatch, held: threading.Event, release: threading.Event) -> None:
    """The first client to send (try 1's) is held just before its first request goes out."""
    real_send = AsyncOctopodsClient.send
    first: dict[str, Any] = {}

    async def send(self: AsyncOctopodsClient, request: Any) -> Any:
        if first.setdefault("client", self) is self and not held.is_set():
            held.set()
            assert await asyncio.to_thread(release.wait, WAIT)
        return await real_send(self, request)

    monkeypatch.setattr(AsyncOctopodsClient, "send", send)


def thread_may_execute() -> None:
    """Airflow 2.11's guard against calling ``execute`` by hand keeps its state per thread, set up
    only in the thread that imported it; a try run in another thread needs it too."""
    try:
        from airflow.models.baseoperator import ExecutorSafeguard  # type: ignore[import-not-found,unused-ignore]
    except ImportError:  # Airflow 3
        return
    if not hasattr(ExecutorSafeguard._sentinel, "callers"):
        ExecutorSafeguard._sentinel.callers = {}


class Tries:
    """Tries of the batch's one task instance, run as Airflow would run overlapping ones."""

    def __init__(self) -> None:
        self.outcomes: dict[int, Any] = {}

    def run(self, number: int, store: Any, ti_context: dict[str, Any] | None = None) -> None:
        thread_may_execute()
        try:
            self.outcomes[number] = batch(store).execute(ti_context or context(number))
        except Exception as err:  # try 1 may stop itself: what matters is what was sent
            self.outcomes[number] = err

    def first_held(self, held_at: str, monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Thread, threading.Event]:
        """Try 1, started in a thread and held where ``held_at`` says; set the event to release it."""
        held, release = threading.Event(), threading.Event()
        store: Any = VariableStore()
        if held_at == "after_writing_intents":
            store = HeldAfterIntents(held, release)
        else:
            hold_first_send(monkeypatch, held, release)
        try_1 = threading.Thread(target=self.run, args=(1, store))
        try_1.start()
        assert held.wait(WAIT), f"try 1 never reached the point where it is held: {self.outcomes}"
        return try_1, release


def no_phone_twice(server: SandboxServer) -> None:
    per_phone = Counter(m.phone for m in server.messages())
    assert [phone for phone, count in per_phone.items() if count > 1] == []
    assert server.duplicates() == 0


HELD_AT = ["after_writing_intents", "before_sending"]


@pytest.mark.parametrize("held_at", HELD_AT)
def test_two_tries_at_once_send_no_row_twice_and_a_third_sees_both(
    sandbox: Callable[..., SandboxServer], monkeypatch: pytest.MonkeyPatch, held_at: str
) -> None:
    server = sandbox()
    tries = Tries()
    try_1, release = tries.first_held(held_at, monkeypatch)
    tries.run(2, VariableStore())  # Airflow's retry, while try 1 still runs
    release.set()
    try_1.join(WAIT)
    assert not try_1.is_alive()
    no_phone_twice(server)

    sent_by_both = len(server.messages())
    tries.run(3, VariableStore())
    third = tries.outcomes[3]
    assert isinstance(third, dict), third
    assert third["accepted_earlier"] == sent_by_both  # every accepted send of both tries is seen
    assert third["unknown"] == 0
    assert len(server.messages()) == len(ROWS)  # the third try sent the rest, and only the rest
    assert Counter(m.phone for m in server.messages()) == Counter(row["phone"] for row in ROWS)


@pytest.mark.parametrize("held_at", HELD_AT)
def test_a_try_that_goes_on_after_another_succeeded_sends_no_row_twice_and_leaves_no_record(
    sandbox: Callable[..., SandboxServer], monkeypatch: pytest.MonkeyPatch, held_at: str
) -> None:
    """Try 2 succeeds while try 1 is held, and the provider's listener deletes the task instance's
    record; then try 1 goes on."""
    from airflow.models import Variable
    from airflow.utils.session import create_session

    from airflow_provider_octopods.send_record import VARIABLE_PREFIX, task_succeeded

    server = sandbox()
    tries = Tries()
    try_1, release = tries.first_held(held_at, monkeypatch)
    second = context(2)
    tries.run(2, VariableStore(), second)
    task_succeeded(second["ti"])  # what the listener does when Airflow records try 2's success
    release.set()
    try_1.join(WAIT)
    assert not try_1.is_alive()
    no_phone_twice(server)
    assert "another try succeeded" in str(tries.outcomes[1])
    with create_session() as session:
        left = session.query(Variable).filter(Variable.key.like(f"{VARIABLE_PREFIX}%")).count()
    assert left == 0
