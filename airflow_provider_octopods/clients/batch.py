"""Sending a planned batch over the async client: bounded concurrency, pacing (the client's rate
limiter), and the send record written in chunks.

Intents are recorded with one write for a group of sends (twice ``max_in_flight``) before the
first of them starts; results in one write per ``chunk_size`` answers (or every second).
A send that provably did not go out has its intent dropped, so a later try sends it; a send that
may have gone out keeps its intent and is reported as unknown.

:meth:`BatchSender.stop` (from any thread) ends the batch cleanly: no new request starts, the
requests in flight finish, and what they did is recorded (the client, given the same stop flag,
gives up requests still waiting for their pacing slot or a retry). A process killed outright
leaves in doubt at most one group of intents and the answers of the last second: a later try
reports those as unknown and does not send them.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_octopods.api.batch import PlannedSend
from airflow_provider_octopods.api.decision import Operation, decide
from airflow_provider_octopods.api.errors import OctopodsError, OctopodsUnknownOutcomeError
from airflow_provider_octopods.api.models import SendResult

if TYPE_CHECKING:
    from airflow_provider_octopods.send_record import SendRecord

FLUSH_SECONDS = 1.0


@dataclass
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
    :param chunk_size: sends whose intents are recorded with one write.
    """

    def __init__(
        self,
        client: Any,
        record: SendRecord | None,
        *,
        max_in_flight: int,
        chunk_size: int,
        to_thread: Callable[..., Any] = asyncio.to_thread,
        stop: threading.Event | None = None,
    ) -> None:
        self.client = client
        self.record = record
        self.max_in_flight = max_in_flight
        self.chunk_size = chunk_size
        self._to_thread = to_thread
        self._stopping = stop or threading.Event()
        self.done = 0
        self._accepted: list[tuple[str, SendResult]] = []
        self._not_sent: list[str] = []
        self._last_flush = time.monotonic()

    def stop(self) -> None:
        """Start no new request (thread-safe); the ones in flight finish and are recorded."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def run(self, todo: list[tuple[str, PlannedSend]]) -> list[Sent]:
        """Send everything in ``todo`` (unless stopped); the outcome of each send started.

        Intents are recorded a few sends ahead (twice ``max_in_flight``, at most ``chunk_size``),
        so that a worker killed outright leaves few sends in doubt.
        """
        outcomes: list[Sent] = []
        in_flight: set[asyncio.Task[None]] = set()
        slots = asyncio.Semaphore(self.max_in_flight)
        group = max(1, min(self.chunk_size, 2 * self.max_in_flight))
        scheduled = intended = 0
        try:
            while scheduled < len(todo) and not self.stopping:
                if scheduled == intended:
                    ahead = todo[intended : intended + group]
                    if self.record is not None:
                        await self._to_thread(self.record.begin, [(slot, send.request) for slot, send in ahead])
                    intended += len(ahead)
                await slots.acquire()
                if self.stopping:
                    slots.release()
                    break
                slot, send = todo[scheduled]
                task = asyncio.ensure_future(self._one(slot, send, outcomes, slots))
                scheduled += 1
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                if self._due():
                    await self._flush()
            if in_flight:
                await asyncio.gather(*in_flight)
        finally:
            self._not_sent.extend(slot for slot, _ in todo[scheduled:intended])  # intents never started
            await self._flush()
        return outcomes

    async def _one(self, slot: str, send: PlannedSend, outcomes: list[Sent], slots: asyncio.Semaphore) -> None:
        try:
            result = await self.client.send(send.request)
        except OctopodsError as err:
            sent = Sent(send, slot, error=err)
            if not sent.maybe_sent:
                self._not_sent.append(slot)
        except Exception as exc:  # not the client's own error: the request may have gone out
            sent = Sent(
                send, slot, error=OctopodsUnknownOutcomeError(f"the send failed in this process: {exc!r}"[:200])
            )
        else:
            sent = Sent(send, slot, result=result)
            self._accepted.append((slot, result))
        finally:
            slots.release()
            self.done += 1
        outcomes.append(sent)

    def _due(self) -> bool:
        pending = len(self._accepted) + len(self._not_sent)
        return pending >= self.chunk_size or (pending > 0 and time.monotonic() - self._last_flush >= FLUSH_SECONDS)

    async def _flush(self) -> None:
        accepted, self._accepted = self._accepted, []
        not_sent, self._not_sent = self._not_sent, []
        self._last_flush = time.monotonic()
        if self.record is None or not (accepted or not_sent):
            return
        await self._to_thread(self.record.settle, accepted, not_sent)
