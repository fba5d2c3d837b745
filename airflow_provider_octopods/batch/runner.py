"""Running a batch's sends: an event loop in a helper thread, progress in the log, a clean stop."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_octopods.api.batch import BatchReport, PlannedSend, RowOutcome
from airflow_provider_octopods.batch.report import EarlierUnknown

if TYPE_CHECKING:
    from airflow_provider_octopods.batch.sender import BatchSender, Sent
    from airflow_provider_octopods.hooks.octopods import OctopodsHook
    from airflow_provider_octopods.send_record import SendGuard

PROGRESS_SECONDS = 10.0
STOP_GRACE_SECONDS = 30.0
YOUNG_OBJECTS = 10_000  # while a batch runs: tracked objects made (less those freed) between two young collections


class BatchRunner:
    """Sends a try's rows through the hook's async client, the guard recording each send.

    :param hook: the hook whose async client sends (its connection, its retry policy).
    :param rate_limit: the most requests per second (see the operator), or None.
    :param max_in_flight: the most requests waiting for an answer at once.
    :param chunk_size: answers recorded with one write of the send record.
    :param log: where progress goes.
    """

    def __init__(
        self,
        hook: OctopodsHook,
        *,
        rate_limit: float | None,
        max_in_flight: int,
        chunk_size: int,
        log: logging.Logger | Any,
    ) -> None:
        self.hook = hook
        self.rate_limit = rate_limit
        self.max_in_flight = max_in_flight
        self.chunk_size = chunk_size
        self.log = log
        self._stop = threading.Event()
        parent = os.getppid()
        self.supervisor_alive: Callable[[], bool] = lambda: os.getppid() == parent

    def stop(self) -> None:
        """Start no new request (from any thread); the ones in flight finish and are recorded."""
        self._stop.set()

    def _must_stop(self) -> bool:
        """Asked before every request starts: stopped, or this task process lost its supervisor
        (its worker was killed: the process was handed to another parent). A task that lost its
        worker stops at once, before its next record write fails: at most the requests already in
        flight go out after the loss."""
        if self._stop.is_set():
            return True
        if not self.supervisor_alive():
            self.log.warning("This task's supervisor is gone (its worker died?): no new sends")
            self._stop.set()
            return True
        return False

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def run(
        self,
        todo: list[tuple[str, Any]],
        guard: SendGuard,
        total: int,
        settle: Callable[[Sent], None],
        *,
        held: int = 0,
        next_at: datetime | None = None,
    ) -> int:
        """Send ``todo`` (``(slot, PlannedSend)`` pairs) on an event loop in a helper thread, passing
        each outcome to ``settle`` there; this thread logs progress and, if Airflow interrupts the
        task (timeout, SIGTERM), stops the batch cleanly before giving up. Returns how many of
        ``todo`` were started (the first ones, in order).

        :param held: rows waiting for a later send time or window, for the progress lines.
        :param next_at: when the first of them is due.
        """
        from airflow_provider_octopods.api.pacing import api_pacer
        from airflow_provider_octopods.api.retry import RetryPolicy
        from airflow_provider_octopods.batch.sender import BatchSender

        if not todo:
            return 0
        client = self.hook.get_async_client(
            retry_policy=RetryPolicy(max_attempts=4, max_rate_limited=50),
            max_connections=self.max_in_flight,
            rate_limiter=api_pacer(self.rate_limit) if self.rate_limit else None,
            stop=self._must_stop,
        )
        outcome: dict[str, Any] = {}
        # Waiting on an Event, not Thread.join: a join interrupted by a signal handler's exception
        # (execution_timeout, SIGTERM on 2.11) marks the thread finished while it still runs (CPython 3.11).
        finished = threading.Event()
        counter: dict[str, BatchSender] = {}

        async def run() -> int:
            async with client:
                sender = BatchSender(
                    client,
                    guard,
                    max_in_flight=self.max_in_flight,
                    chunk_size=self.chunk_size,
                    stop=self._stop,
                    on_sent=settle,
                    named_by_content=True,  # the operator's slots are guard.slot(request, occurrence)
                )
                counter["sender"] = sender
                await sender.run(todo)
                return sender.started

        def work() -> None:
            try:
                outcome["sent"] = asyncio.run(run())
            except BaseException as err:
                outcome["error"] = err
            finally:
                finished.set()

        worker = threading.Thread(target=work, name="octopods-batch", daemon=True)
        started = time.monotonic()
        worker.start()
        progress = Progress(self.log, total, len(todo), started, held=held, next_at=next_at)
        try:
            while not finished.wait(0.2):
                self._must_stop()
                if "sender" in counter:
                    progress.maybe_log(counter["sender"].done)
        except BaseException:  # the caller logs what was sent; no new sends, the ones in flight recorded
            self._stop.set()
            finished.wait(STOP_GRACE_SECONDS)
            raise
        if "error" in outcome:
            raise outcome["error"]
        progress.log(counter["sender"].done if "sender" in counter else 0)
        return int(outcome["sent"])


def sends_to_make(
    sends: Iterable[PlannedSend], report: BatchReport, guard: SendGuard, *, resend_unknown: bool, log: Any
) -> tuple[list[tuple[str, PlannedSend]], list[PlannedSend]]:
    """The ``sends`` still to make, as ``(slot, send)``, as the guard decides, and those an earlier
    try may have made (unknown). What earlier tries made or may have made is put in ``report``."""
    from airflow_provider_octopods.send_record import Action

    todo = []
    held: list[PlannedSend] = []
    earlier = unknown = 0
    for send in sends:
        content = guard.content(send.request)
        verdict = guard.decide(
            guard.slot(send.request, send.occurrence, content=content),
            send.request,
            resend_unknown=resend_unknown,
            content=content,
        )
        if verdict.action is Action.SEND:
            todo.append((verdict.slot, send))
        elif verdict.action is Action.ACCEPTED_EARLIER and verdict.prior is not None:
            report.record(send, RowOutcome.ACCEPTED_EARLIER, verdict.prior.result(send.request))
            earlier += 1
        else:
            prior = verdict.prior
            report.record(
                send,
                RowOutcome.UNKNOWN,
                error=EarlierUnknown(prior.try_number if prior else None, prior.by if prior else None),
            )
            held.append(send)
            unknown += 1
    if earlier or unknown:
        log.info(
            "Resuming: %d sent by an earlier try or run, %d with an unknown outcome (not sent again%s), %d to send",
            earlier,
            unknown,
            "" if not unknown else "; resend_unknown=True would",
            len(todo),
        )
    return todo, held


class LongLivedObjectsFrozen:
    """Keeps Python's garbage collections short and few while a batch runs.

    With Airflow loaded, a full collection walks every object Airflow keeps alive, during which the
    event loop stands still (paced requests miss their slots), and a large batch triggers such
    collections again and again. The objects alive when the batch starts (and again once its sends
    are listed) are put out of the collector's reach with ``gc.freeze()``, as Airflow's own
    executors do before they fork a task's process. They are given back at the end if nothing had
    frozen objects before; where something had (such an executor), they stay frozen with its own
    until the task's process ends. While sending, thousands of young objects are alive at any time
    (the requests in flight, the answers not yet recorded) and each collection of the youngest
    generation walks them all: until the end, it runs once :data:`YOUNG_OBJECTS` more tracked
    objects have been made than freed, instead of Python's 700 (a process that turned automatic
    collection off keeps it off).
    """

    def __enter__(self) -> LongLivedObjectsFrozen:
        self._ours = gc.get_freeze_count() == 0
        self._threshold = gc.get_threshold()
        self.freeze()
        if 0 < self._threshold[0] < YOUNG_OBJECTS:
            gc.set_threshold(YOUNG_OBJECTS, *self._threshold[1:])
        return self

    def freeze(self) -> None:
        gc.freeze()

    def __exit__(self, *exc: object) -> None:
        gc.set_threshold(*self._threshold)
        if self._ours:
            gc.unfreeze()


class Progress:
    """The batch's progress line, logged every ``PROGRESS_SECONDS``."""

    def __init__(
        self,
        log: logging.Logger | Any,
        total: int,
        todo: int,
        started: float,
        *,
        held: int = 0,
        next_at: datetime | None = None,
    ) -> None:
        self.log_ = log
        self.total = total
        self.todo = todo
        self.started = started
        self.last = started
        self.held = (
            ""
            if not held
            else f"; {held} held for their send time or window"
            + (f", the next at {next_at:%Y-%m-%d %H:%M} UTC" if next_at is not None else "")
        )

    def maybe_log(self, done: int) -> None:
        if time.monotonic() - self.last >= PROGRESS_SECONDS:
            self.log(done)

    def log(self, done: int) -> None:
        now = time.monotonic()
        self.last = now
        rate = done / (now - self.started) if now > self.started else 0.0
        left = self.todo - done
        eta = f"{left / rate:.0f}s" if rate and left else "0s"
        self.log_.info(
            "Batch progress: %d/%d sent in this try (%d in the batch%s), %.1f msg/s, ETA %s",
            done,
            self.todo,
            self.total,
            self.held,
            rate,
            eta,
        )
