"""BatchSender: intents ahead of sends, results in chunks, a clean stop, odd exceptions."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from airflow_provider_octopods.api.batch import plan_batch
from airflow_provider_octopods.api.models import SendRequest, SendResult
from airflow_provider_octopods.api.segments import Encoding
from airflow_provider_octopods.batch.sender import BatchSender
from airflow_provider_octopods.send_record import INTENT, MemoryStore, SendGuard, TaskKey

ROWS = [{"phone": f"+4477009{n:05d}", "name": str(n)} for n in range(100)]


class Client:
    def __init__(self, stop_after: int | None = None, stop: threading.Event | None = None) -> None:
        self.sent = 0
        self.stop_after = stop_after
        self.stop = stop

    async def send(self, request: SendRequest) -> SendResult:
        await asyncio.sleep(0.001)
        self.sent += 1
        if self.stop is not None and self.sent == self.stop_after:
            self.stop.set()  # e.g. on_kill() from Airflow's SIGTERM handler
        if request.phone.endswith("00013"):
            raise RuntimeError("a bug in a layer below")
        return SendResult("r", self.sent, request.phone, 1, Encoding.GSM7)


def slots_and_record() -> tuple[list[tuple[str, Any]], SendGuard]:
    record = SendGuard(TaskKey("d", "r", "t"), try_number=1, store=MemoryStore())
    plan = plan_batch(ROWS, render=lambda row: f"Hi {row['name']}")
    return [(record.slot(s.request, 1), s) for s in plan.sends], record


def reread(record: SendGuard) -> SendGuard:
    """What is durable of ``record``: its try's log read again (a later try would also write its
    head, which would stop the batch still running)."""
    return SendGuard(record.key, try_number=record.try_number, store=record.store)


def test_a_stop_leaves_no_intent_of_a_send_that_never_started() -> None:
    todo, record = slots_and_record()
    stop = threading.Event()
    sender = BatchSender(Client(stop_after=10, stop=stop), record, max_in_flight=4, chunk_size=50, stop=stop)
    outcomes = asyncio.run(sender.run(todo))
    started = {o.slot for o in outcomes}
    assert 10 <= len(started) < 20
    stored = reread(record)
    for slot, _ in todo:
        prior = stored.prior(slot)
        if slot in started:
            assert prior is not None  # accepted, or unknown (row 14's odd exception is not here)
        else:
            assert prior is None  # never started: the next try sends it


def test_an_exception_that_is_not_the_clients_own_is_an_unknown_outcome() -> None:
    todo, record = slots_and_record()
    outcomes = asyncio.run(BatchSender(Client(), record, max_in_flight=8, chunk_size=20).run(todo))
    [odd] = [o for o in outcomes if o.error is not None]
    assert odd.maybe_sent
    assert "RuntimeError('a bug in a layer below')" in str(odd.error)
    assert reread(record).prior(odd.slot).state == INTENT


def send_watching_intents(to_thread: Any) -> tuple[int, set[str], list[int]]:
    """Send the 100 rows with the record written by ``to_thread``; check that each intent is
    durable before its send. Returns the rows, the slots started and the intents ahead at each send."""
    todo, record = slots_and_record()
    slot_of = {id(send.request): slot for slot, send in todo}
    started: set[str] = set()
    ahead: list[int] = []

    class Watching(Client):
        async def send(self, request: SendRequest) -> SendResult:
            slot = slot_of[id(request)]
            stored = reread(record).states()  # what is durable: a later try reads it
            intents = {s for s, state in stored.items() if state == INTENT}
            assert slot in intents  # durable before the request leaves
            started.add(slot)
            ahead.append(len(intents - started))
            return await super().send(request)

    asyncio.run(BatchSender(Watching(), record, max_in_flight=4, chunk_size=50, to_thread=to_thread).run(todo))
    return len(todo), started, ahead


def test_every_intent_is_recorded_before_its_send_and_at_most_two_groups_ahead() -> None:
    async def quick_write(function: Any, *args: Any) -> Any:  # a record written in no time
        return function(*args)

    rows, started, ahead = send_watching_intents(quick_write)
    assert len(started) == rows
    assert 4 < max(ahead) <= 8  # written ahead while sends go out, never more than twice max_in_flight


@pytest.mark.parametrize("write_seconds", [0.005, 0.05])
def test_slow_writes_of_the_record_are_covered_by_more_intents_ahead_within_bounds(write_seconds: float) -> None:
    """Sends at about 4,000/s outrun a record written in 5 or 50 ms: the intents written ahead grow
    to cover sixteen writes' time of sends, never past twice ``chunk_size`` (100 here), and each
    intent is still durable before its send."""

    async def slow_write(function: Any, *args: Any) -> Any:
        await asyncio.sleep(write_seconds)
        return function(*args)

    rows, started, ahead = send_watching_intents(slow_write)
    assert len(started) == rows
    print(f"most intents ahead: {max(ahead)}")
    assert 8 < max(ahead) <= 100  # more than the two groups of a quick record, within the caps


@pytest.mark.parametrize(
    ("rate", "write_seconds", "lead"),
    [(4000, 0.005, 320), (100, 0.015, 24), (100, 0.02, 32), (100, 0.2, 100), (8000, 0.02, 400)],
)
def test_the_lead_covers_sixteen_writes_time_of_sends_within_its_caps(
    rate: float, write_seconds: float, lead: int
) -> None:
    """The next write starts with a quarter of the lead unstarted: that quarter must outlast the
    write, with room for one as slow again, or every worker waits for the record (seen at 8,000
    sends/s with 5 ms writes: 600 to 800 waits per 10,000 sends with a lead of four writes' time).
    Sixteen writes' time, then (the quarter lasts four, and fewer writes of intents than with
    eight: 16 against 19 per 10,000 sends in ``benchmarks/batch.py``, at 64 in flight and
    ``chunk_size`` 500): at least two groups of
    ``max_in_flight`` (16 here), at most one second of sends (100 at 100/s) and twice
    ``chunk_size`` (400)."""
    sender = BatchSender(Client(), None, max_in_flight=8, chunk_size=200)
    sender._rate, sender._write_seconds = rate, write_seconds
    assert sender._lead_now() == lead


def test_a_failed_write_of_results_stops_the_batch_and_its_results_are_written_at_the_end() -> None:
    todo, record = slots_and_record()
    failed: list[int] = []

    async def failing_settle(function: Any, *args: Any) -> Any:
        accepted = args[-2]
        if accepted and not failed:  # the first write that carries answers (with intents or alone)
            failed.append(len(accepted))
            raise OSError("metadata DB gone")
        return function(*args)

    sender = BatchSender(Client(), record, max_in_flight=4, chunk_size=10, to_thread=failing_settle)
    with pytest.raises(OSError, match="metadata DB gone"):
        asyncio.run(sender.run(todo))
    stored = reread(record)
    accepted = [slot for slot, _ in todo[: sender.started] if (p := stored.prior(slot)) is not None and p.accepted]
    assert sender.started < len(todo)  # nothing new started after the failed write
    odd = 1 if sender.started > 13 else 0  # row 14's odd exception stays unknown
    assert len(accepted) == sender.started - odd  # every other answer recorded by the last write


def test_intents_whose_write_failed_are_not_saved_by_a_later_write() -> None:
    """They never went out: a later write (the last one, with the answers) must not make them
    unknown outcomes that the next try would refuse to send."""
    todo, record = slots_and_record()
    store = record.store
    assert isinstance(store, MemoryStore)
    real_begin, real_save = record.begin, store.save
    begins: list[int] = []
    failed: list[str] = []

    def counting_begin(*args: Any, **kwargs: Any) -> None:
        begins.append(1)
        real_begin(*args, **kwargs)

    def save_failing_in_the_third_begin(key: str, value: dict[str, Any], *, description: str) -> None:
        if len(begins) == 3 and not failed:
            failed.append(key)
            raise OSError("metadata DB gone")  # begin() has changed the record in memory already
        real_save(key, value, description=description)

    record.begin = counting_begin  # type: ignore[method-assign]
    store.save = save_failing_in_the_third_begin  # type: ignore[method-assign]
    sender = BatchSender(Client(), record, max_in_flight=4, chunk_size=50)
    with pytest.raises(OSError, match="metadata DB gone"):
        asyncio.run(sender.run(todo))
    assert 0 < sender.started < len(todo)
    stored = reread(record)
    for slot, _ in todo[sender.started :]:
        assert stored.prior(slot) is None  # never sent: the next try sends it


def test_with_a_rate_limit_the_intents_ahead_never_pass_one_second_of_its_sends() -> None:
    """Answers can come back faster than the limit for a while; the lead still counts the rate
    limit's sends, so a killed worker leaves at most one second of them in doubt."""
    from airflow_provider_octopods.api.pacing import api_pacer

    todo, record = slots_and_record()
    started: set[str] = set()
    ahead: list[int] = []
    slot_of = {id(send.request): slot for slot, send in todo}

    class Limited(Client):
        rate_limiter = api_pacer(20)  # 19.8/s; this client does not pace itself: answers come at once

        async def send(self, request: SendRequest) -> SendResult:
            started.add(slot_of[id(request)])
            stored = reread(record).states()
            ahead.append(len({s for s, state in stored.items() if state == INTENT} - started))
            return await super().send(request)

    async def slow_write(function: Any, *args: Any) -> Any:
        await asyncio.sleep(0.05)
        return function(*args)

    asyncio.run(BatchSender(Limited(), record, max_in_flight=4, chunk_size=50, to_thread=slow_write).run(todo))
    assert len(started) == len(todo)
    assert max(ahead) <= 19  # one second of 19.8/s (without the limit: up to 100, twice chunk_size)


def test_a_send_whose_window_closed_before_its_turn_is_not_started_and_leaves_no_intent() -> None:
    from dataclasses import replace
    from datetime import datetime, timedelta, timezone

    from airflow_provider_octopods.api.errors import OctopodsWindowClosedError

    todo, record = slots_and_record()
    closed = datetime.now(timezone.utc) - timedelta(seconds=1)
    todo = [(slot, replace(send, closes_at=closed) if n % 2 else send) for n, (slot, send) in enumerate(todo[:20])]
    client = Client()
    outcomes = asyncio.run(BatchSender(client, record, max_in_flight=4, chunk_size=50).run(todo))
    shut = [o for o in outcomes if isinstance(o.error, OctopodsWindowClosedError)]
    assert len(shut) == 10
    assert client.sent == 10  # only the sends whose window was still open
    assert not any(o.maybe_sent for o in shut)
    stored = reread(record)
    assert all(stored.prior(o.slot) is None for o in shut)  # no intent left: sent later, once
