"""Sending a planned batch over the async client: bounded concurrency, pacing (the client's rate
limiter), and the send record written off the event loop.

``max_in_flight`` workers take the sends in order. Intents are recorded ahead of them: each write
tops the intents not yet started up to a *lead*, and is made while the sends before it still go
out (once a quarter of the lead is left), so that the workers seldom wait for the record. The lead
is twice ``max_in_flight`` (at most twice ``chunk_size``); when the record's writes are slow for the
rate the sends go at, it grows to cover sixteen writes' time of sends (so that the quarter left when
a write starts lasts four, and the record is written less often), but never past one second of
sends nor twice ``chunk_size``. Results are
recorded with the next write of intents, or with one write per ``chunk_size`` answers (or every
second) when no write of intents comes first, also while sending goes on.
A send that provably did not go out has its intent dropped, so a later try sends it; a send that
may have gone out keeps its intent and is reported as unknown.

:meth:`BatchSender.stop` (from any thread) ends the batch cleanly: no new request starts, the
requests in flight finish, and what they did is recorded (the client, given the same stop flag,
gives up requests still waiting for their pacing slot or a retry). A process killed outright
leaves in doubt at most the intents written ahead (the lead: twice ``max_in_flight``, or up to one
second of sends), the requests in flight and the answers of the last second: a later try reports
those as unknown and does not send them.
"""

from __future__ import annotations

import asyncio
import functools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_octopods.api.batch import PlannedSend, clip
from airflow_provider_octopods.api.decision import Operation, decide
from airflow_provider_octopods.api.errors import OctopodsError, OctopodsUnknownOutcomeError, OctopodsWindowClosedError
from airflow_provider_octopods.api.models import SendResult

if TYPE_CHECKING:
    from airflow_provider_octopods.send_record import SendGuard

FLUSH_SECONDS = 1.0


@dataclass(slots=True)
class Sent:
    """What one send of the batch came to: a result, or an error that may or may not have sent."""

    send: PlannedSend
    slot: str
    result: SendResult | None = None
    error: OctopodsError | None = None

    @property
    def maybe_sent(self) -> bool:
        return self.error is not None and decide(Operation.SEND, self.error).maybe_sent


class BatchSender:
    """Sends ``(slot, PlannedSend)`` pairs through ``client`` (an ``AsyncOctopodsClient``).

    :param record: the task instance's send record, or None to record nothing.
    :param max_in_flight: the most requests waiting for an answer at once.
    :param chunk_size: answers recorded with one write (and the most intents in one write).
    :param on_sent: called on the event loop with each send's outcome as it settles; without it,
        :meth:`run` returns the outcomes.
    :param named_by_content: every slot is ``f"{record.content(request)}#{n}"`` (see
        ``SendGuard.begin``).
    """

    def __init__(
        self,
        client: Any,
        record: SendGuard | None,
        *,
        max_in_flight: int,
        chunk_size: int,
        to_thread: Callable[..., Any] = asyncio.to_thread,
        stop: threading.Event | None = None,
        on_sent: Callable[[Sent], None] | None = None,
        named_by_content: bool = False,
    ) -> None:
        self.client = client
        self.record = record
        self.max_in_flight = max_in_flight
        self.chunk_size = chunk_size
        self._to_thread = to_thread
        self._stopping = stop or threading.Event()
        self._on_sent = on_sent
        self._named_by_content = named_by_content
        self.done = 0
        self._accepted: list[tuple[str, SendResult]] = []
        self._not_sent: list[str] = []
        self._last_flush = time.monotonic()
        self._flushing: asyncio.Future[Any] | None = None
        self._started = 0
        self._intended = 0
        self._group = max(1, min(chunk_size, max_in_flight))
        self._failed: BaseException | None = None
        self._write_seconds = 0.0
        self._rate = 0.0
        self._lead = self._lead_now()

    def stop(self) -> None:
        """Start no new request (thread-safe); the ones in flight finish and are recorded."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    @property
    def started(self) -> int:
        """How many sends of the last :meth:`run` started (they are the first ones, in order)."""
        return self._started

    async def run(self, todo: list[tuple[str, PlannedSend]]) -> list[Sent]:
        """Send everything in ``todo`` (unless stopped); the outcome of each send started (none
        when ``on_sent`` takes them).

        :raises: what a write of the send record raised, once the requests in flight are recorded.
        """
        outcomes: list[Sent] = []
        emit = self._on_sent or outcomes.append
        self._started = self._intended = 0
        self._closing = False
        self._written = asyncio.Event()
        self._wanted = asyncio.Event()
        writer = asyncio.ensure_future(self._write_intents(todo))
        workers = [asyncio.ensure_future(self._work(todo, emit)) for _ in range(min(self.max_in_flight, len(todo)))]
        try:
            await asyncio.gather(*workers)
        finally:
            self._closing = True
            self._wanted.set()
            for worker in workers:
                worker.cancel()  # only when cancelled from outside: a worker returns by itself otherwise
            await asyncio.gather(*workers, return_exceptions=True)
            await asyncio.gather(writer, return_exceptions=True)
            self._not_sent.extend(slot for slot, _ in todo[self._started : self._intended])  # never started
            if self._flushing is not None:
                await self._flushing
            await self._flush()
        if self._failed is not None:
            raise self._failed
        return outcomes

    def _go_on(self, todo: list[tuple[str, PlannedSend]]) -> bool:
        return self._started < len(todo) and not self.stopping and not self._closing and self._failed is None

    async def _write_intents(self, todo: list[tuple[str, PlannedSend]]) -> None:
        """Record intents ahead of the sends: once a quarter of the lead is left unstarted, top
        them up to the lead."""
        last_write, done_then = time.monotonic(), 0
        try:
            while self._intended < len(todo) and self._go_on(todo):
                unstarted = self._intended - self._started
                lead = self._lead
                if unstarted > lead // 4:
                    self._wanted.clear()
                    await self._wanted.wait()
                    continue
                now = time.monotonic()
                if now > last_write and self._intended:
                    self._rate = self._sending_rate((self.done - done_then) / (now - last_write))
                    self._lead = self._lead_now()
                last_write, done_then = now, self.done
                ahead = todo[self._intended : self._intended + lead - unstarted]
                if self.record is not None:
                    intents = [(slot, send.request) for slot, send in ahead]
                    begin = self.record.begin
                    if self._named_by_content:
                        begin = functools.partial(begin, named_by_content=True)
                    try:
                        if self._flushing is None:  # the answers so far go with the same write
                            await self._write(begin, intents)
                        else:
                            await self._to_thread(begin, intents)
                    except Exception:
                        # Kept in memory, these intents would be saved by a later write: they were
                        # never sent, and must be dropped from the record as such.
                        self._not_sent.extend(slot for slot, _ in ahead)
                        raise
                self._write_seconds = time.monotonic() - now
                self._lead = self._lead_now()
                self._intended += len(ahead)
                self._written.set()
                self._written = asyncio.Event()
        except Exception as err:
            self._failed = self._failed or err
        finally:
            self._written.set()

    def _sending_rate(self, answered_per_second: float) -> float:
        """The rate sends go at: the answers per second since the last write, at most the
        client's rate limit (answers can come back bunched; requests taken by the workers but
        still waiting for their pacing slot are not counted at all)."""
        limiter = getattr(self.client, "rate_limiter", None)
        return min(answered_per_second, limiter.per_second) if limiter is not None else answered_per_second

    def _lead_now(self) -> int:
        """How many intents to keep written ahead of the sends (see the module docstring)."""
        floor = 2 * self._group
        cap = min(2 * max(self.chunk_size, self._group), max(floor, int(self._rate)))
        return max(floor, min(math.ceil(16 * self._rate * self._write_seconds), cap))

    async def _work(self, todo: list[tuple[str, PlannedSend]], emit: Callable[[Sent], None]) -> None:
        while self._go_on(todo):
            if self._started >= self._intended:
                await self._written.wait()
                continue
            slot, send = todo[self._started]
            self._started += 1
            if self._intended - self._started <= self._lead // 4:
                self._wanted.set()
            sent = await self._one(slot, send)
            try:
                emit(sent)
            except Exception as err:  # the caller's bug: start nothing more, record what was sent
                self._failed = self._failed or err
            if self._flushing is None and self._due():
                self._flushing = asyncio.ensure_future(self._flush_meanwhile())

    async def _one(self, slot: str, send: PlannedSend) -> Sent:
        if send.closes_at is not None and datetime.now(timezone.utc) >= send.closes_at:
            self._not_sent.append(slot)
            self.done += 1
            return Sent(send, slot, error=OctopodsWindowClosedError("not sent: its send window closed before its turn"))
        try:
            result = await self.client.send(send.request)
        except OctopodsError as err:
            sent = Sent(send, slot, error=err)
            if not sent.maybe_sent:
                self._not_sent.append(slot)
        except Exception as exc:  # not the client's own error: the request may have gone out
            sent = Sent(
                send, slot, error=OctopodsUnknownOutcomeError(clip(f"the send failed in this process: {exc!r}"))
            )
        else:
            sent = Sent(send, slot, result=result)
            self._accepted.append((slot, result))
        finally:
            self.done += 1
        return sent

    def _due(self) -> bool:
        pending = len(self._accepted) + len(self._not_sent)
        return pending >= self.chunk_size or (pending > 0 and time.monotonic() - self._last_flush >= FLUSH_SECONDS)

    async def _flush_meanwhile(self) -> None:
        try:
            await self._flush()
        except Exception as err:  # raised by run() once the requests in flight are recorded
            self._failed = self._failed or err
        finally:
            self._flushing = None

    async def _flush(self) -> None:
        if self.record is not None and (self._accepted or self._not_sent):
            await self._write(self.record.settle)

    async def _write(self, method: Callable[..., None], *args: Any) -> None:
        """Call ``method`` of the record (off the event loop) with ``args`` and the answers so far."""
        accepted, self._accepted = self._accepted, []
        not_sent, self._not_sent = self._not_sent, []
        self._last_flush = time.monotonic()
        try:
            await self._to_thread(method, *args, accepted, not_sent)
        except BaseException:
            self._accepted[:0], self._not_sent[:0] = accepted, not_sent  # for the last flush to try again
            raise
