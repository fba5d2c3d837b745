"""``OctopodsDeliveryTrigger``: follow one message or thousands in the triggerer, no worker slot held."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_octopods.api.decision import Operation, decide
from airflow_provider_octopods.api.delivery import DeliveryTarget, Outcome
from airflow_provider_octopods.api.errors import (
    OctopodsConfigurationError,
    OctopodsError,
    OctopodsNotFoundError,
)
from airflow_provider_octopods.api.models import MessageId
from airflow_provider_octopods.api.tracking import BatchPolicy, DeliveryBatch

if TYPE_CHECKING:
    from airflow_provider_octopods.clients.aio import AsyncOctopodsClient

CLASSPATH = "airflow_provider_octopods.triggers.octopods.OctopodsDeliveryTrigger"


class OctopodsDeliveryTrigger(BaseTrigger):
    """Poll the delivery status of ``message_ids`` until the outcome is decided or ``deadline``.

    Requests are spread evenly over each ``poll_interval`` (no burst) with at most
    ``max_in_flight`` at once, and a message is not polled again once it reached a final
    status. Transient errors are retried by the client, and a read that still fails is simply
    made again one interval later; so is a read that raised something unexpected (logged with
    its traceback and counted in the event's ``read_errors``). An error that another read
    cannot fix (a refused key) ends the trigger with an ``error`` event. It yields exactly one
    event, the batch summary of
    :class:`~airflow_provider_octopods.api.tracking.DeliveryBatch` (``outcome`` is
    ``success``, ``failure``, ``timeout`` or ``error``). It only reads: it never sends.

    :param message_ids: ids returned by sends through ``octopods_conn_id``'s channel.
    :param octopods_conn_id: the connection; its key is read in the triggerer, never serialized.
    :param poll_interval: seconds between two reads of the same message.
    :param deadline: absolute UNIX time after which pending messages are reported as timed out.
    :param target_status: ``delivered``, ``sent`` or ``read``.
    :param accept_sent: count ``sent`` as success.
    :param min_delivered_ratio: the share of messages that must reach the target.
    :param fail_fast: end as soon as that share cannot be reached any more.
    :param max_in_flight: the most status requests in flight at once.
    :param reads_per_second: the most status reads started in any one second (a 429 lowers it);
        None: only ``max_in_flight`` limits them. A round over many messages then takes longer
        than ``poll_interval``.
    """

    def __init__(
        self,
        *,
        message_ids: Sequence[MessageId],
        octopods_conn_id: str,
        poll_interval: float,
        deadline: float,
        target_status: str = "delivered",
        accept_sent: bool = False,
        min_delivered_ratio: float = 1.0,
        fail_fast: bool = True,
        max_in_flight: int = 10,
        reads_per_second: float | None = None,
    ) -> None:
        super().__init__()
        self.message_ids = list(message_ids)
        self.octopods_conn_id = octopods_conn_id
        self.poll_interval = float(poll_interval)
        self.deadline = float(deadline)
        self.target_status = target_status
        self.accept_sent = accept_sent
        self.min_delivered_ratio = float(min_delivered_ratio)
        self.fail_fast = fail_fast
        self.max_in_flight = int(max_in_flight)
        self.reads_per_second = None if reads_per_second is None else float(reads_per_second)
        self.policy = BatchPolicy(DeliveryTarget.of(target_status, accept_sent), self.min_delivered_ratio, fail_fast)
        self.read_errors = 0

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            CLASSPATH,
            {
                "message_ids": self.message_ids,
                "octopods_conn_id": self.octopods_conn_id,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "target_status": self.target_status,
                "accept_sent": self.accept_sent,
                "min_delivered_ratio": self.min_delivered_ratio,
                "fail_fast": self.fail_fast,
                "max_in_flight": self.max_in_flight,
                "reads_per_second": self.reads_per_second,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_octopods.api.pacing import api_pacer
        from airflow_provider_octopods.hooks.octopods import OctopodsHook

        batch = DeliveryBatch(self.message_ids, self.policy)
        pacer = None if self.reads_per_second is None else api_pacer(self.reads_per_second)
        try:
            client = await OctopodsHook(self.octopods_conn_id).aget_async_client(
                max_connections=self.max_in_flight, rate_limiter=pacer
            )
        except OctopodsConfigurationError as err:
            yield TriggerEvent(self._error(batch, err))
            return
        async with client:
            try:
                timed_out = await self._follow(client, batch)
            except OctopodsError as err:
                yield TriggerEvent(self._error(batch, err))
                return
        self._log_progress(batch)
        yield TriggerEvent(batch.summary(timed_out=timed_out) | {"read_errors": self.read_errors})

    async def _follow(self, client: AsyncOctopodsClient, batch: DeliveryBatch) -> bool:
        """Read each pending message every ``poll_interval`` until decided; True if the deadline came first.

        Each message has its own schedule: first reads are spread evenly over one interval, and
        every later read comes one interval after the previous one started. So reads stay spread
        out (no burst), a message is never unread for longer than the interval, and a message
        drops out as soon as it reaches a final status. At most ``max_in_flight`` reads run at once.
        Reads that come due within one tick (1 % of the interval, 50 ms at most) start together
        after one wake-up of the loop, so a read may start up to one tick late.
        """
        interval = self.poll_interval
        started = time.monotonic()
        end = started + max(0.0, self.deadline - time.time())
        pending = batch.pending
        queue = [(started + i * interval / len(pending), i, m) for i, m in enumerate(pending)]
        order = itertools.count(len(queue))
        slots = asyncio.Semaphore(self.max_in_flight)
        finished = asyncio.Event()
        running: set[asyncio.Task[None]] = set()
        refused: list[OctopodsError] = []
        next_log = started + interval
        tick = min(0.05, interval / 100)

        async def read(message_id: MessageId) -> None:
            began = time.monotonic()
            try:
                batch.record(message_id, await client.get_status(message_id))
            except OctopodsNotFoundError as err:
                batch.record_failure(message_id, str(err))
            except OctopodsError as err:
                if not decide(Operation.STATUS, err).retry_task:
                    refused.append(err)
                self.log.warning("Could not read the status of message %s this time: %s", message_id, err)
            except Exception:
                self.read_errors += 1
                self.log.exception("Unexpected error reading the status of message %s; it is read again", message_id)
            finally:
                slots.release()
            if batch.is_pending(message_id):
                heapq.heappush(queue, (began + interval, next(order), message_id))
            finished.set()

        try:
            while not refused and not batch.decided:
                now = time.monotonic()
                if now >= end:
                    return True
                if now >= next_log:
                    self._log_progress(batch)
                    next_log = now + interval
                if queue and queue[0][0] <= now:
                    if not await self._slot(slots, end - now):
                        return True
                    message_id = heapq.heappop(queue)[2]
                    task = asyncio.create_task(read(message_id))
                    running.add(task)
                    task.add_done_callback(running.discard)
                elif queue:
                    await asyncio.sleep(min(max(queue[0][0], now + tick), end, next_log) - now)
                else:  # every pending message is being read: wait for one to come back
                    finished.clear()
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(finished.wait(), min(end, next_log) - now)
            if refused:
                raise refused[0]
            return False
        finally:
            for task in list(running):
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    @staticmethod
    async def _slot(slots: asyncio.Semaphore, timeout: float) -> bool:
        """Take a place among the reads in flight; False if none frees up within ``timeout``."""
        if not slots.locked():
            await slots.acquire()
            return True
        try:
            await asyncio.wait_for(slots.acquire(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def _log_progress(self, batch: DeliveryBatch) -> None:
        self.log.info(
            "Octopods delivery: %d delivered, %d failed, %d pending of %d",
            len(batch.succeeded),
            len(batch.failed),
            len(batch.pending),
            len(batch.ids),
        )

    def _error(self, batch: DeliveryBatch, err: OctopodsError) -> dict[str, Any]:
        return batch.summary() | {
            "outcome": Outcome.ERROR.value,
            "message": f"delivery tracking stopped: {err}",
            "read_errors": self.read_errors,
        }
