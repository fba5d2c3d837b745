"""``OctopodsDeliverySensor``: wait until SMS are delivered, fail fast when they are not."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowSensorTimeout, BaseSensorOperator, PokeReturnValue, conf

from airflow_provider_octopods.api.decision import Operation, decide
from airflow_provider_octopods.api.delivery import DeliveryTarget
from airflow_provider_octopods.api.errors import OctopodsError, OctopodsNotFoundError, OctopodsValidationError
from airflow_provider_octopods.api.tracking import BatchPolicy, DeliveryBatch, is_many, message_ids
from airflow_provider_octopods.api.validation import positive_number, shown, validate_conn_id, whole_number
from airflow_provider_octopods.hooks.octopods import OctopodsHook
from airflow_provider_octopods.task_outcomes import delivery_result, final
from airflow_provider_octopods.templating import check_literal, refused_at_parse

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_octopods.api.models import MessageId


class OctopodsDeliverySensor(BaseSensorOperator):
    """Wait for SMS to reach ``target_status``; fail as soon as delivery fails.

    Keeps poking while messages are queued, sent or unknown. With one message id, the final
    status (status, reason, timestamps; no phone number) is pushed to XCom as ``return_value``;
    with a list, the batch summary (``delivered``, ``failed`` with reasons, ``pending``,
    ``messages``). Deferrable and classic modes give the same result for the same inputs.

    :param message_id: an id returned by a send (``send.output``, ``"{{ ti.xcom_pull(task_ids='send') }}"``),
        or a list of ids: ``[a.output, b.output]``, the ``.output`` of a mapped send, a batch's XCom.
        Templated; checked after rendering.
    :param octopods_conn_id: the ``octopods`` connection; must be the channel that sent the messages.
    :param target_status: ``"delivered"`` (default; a read receipt also counts), ``"sent"`` or ``"read"``.
    :param accept_sent: count ``sent`` as success, for carriers that never send delivery receipts.
    :param min_delivered_ratio: with a list: the share of messages (0 < r <= 1) that must reach the
        target; 1.0 (default) means all.
    :param fail_fast: with a list: fail as soon as that share cannot be reached (default), instead
        of waiting for every message to end and reporting them all.
    :param deferrable: wait in the triggerer instead of a worker slot; defaults to
        ``[operators] default_deferrable``. The trigger polls every ``poke_interval`` seconds until
        ``timeout``.
    :param max_in_flight: deferrable mode: the most status requests in flight at once.
    :param reads_per_second: the most status reads started in any one second, in both modes.

    Other arguments (``poke_interval``, ``timeout``, ``mode="reschedule"``, ...) are the usual
    sensor ones. A status read that fails transiently (rate limit, 5xx, network) is retried by
    the client, and if it still fails, the sensor simply pokes again later. When ``timeout`` is
    reached, the error says how many messages were delivered, failed and still pending, and
    which ids are not final.
    """

    template_fields: Sequence[str] = ("message_id",)
    ui_color = "#e4f0ff"
    _clock = staticmethod(time.monotonic)
    _sleep = staticmethod(time.sleep)

    def __init__(
        self,
        *,
        message_id: Any,
        octopods_conn_id: str = OctopodsHook.default_conn_name,
        target_status: str = "delivered",
        accept_sent: bool = False,
        min_delivered_ratio: float = 1.0,
        fail_fast: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        max_in_flight: int = 10,
        reads_per_second: float = 10.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        with refused_at_parse(f"{type(self).__name__} (task {self.task_id!r})"):
            check_literal(message_id, message_ids)
            validate_conn_id(octopods_conn_id)
            self.policy = BatchPolicy(DeliveryTarget.of(target_status, accept_sent), min_delivered_ratio, fail_fast)
            if not isinstance(deferrable, bool):
                raise OctopodsValidationError("deferrable", f"must be True or False, got {shown(deferrable)}")
            whole_number(max_in_flight, field="max_in_flight")
            self.reads_per_second = positive_number(reads_per_second, field="reads_per_second")
        self.message_id = message_id
        self.octopods_conn_id = octopods_conn_id
        self.target_status = target_status
        self.accept_sent = accept_sent
        self.min_delivered_ratio = min_delivered_ratio
        self.fail_fast = fail_fast
        self.deferrable = deferrable
        self.max_in_flight = max_in_flight
        self._batch: DeliveryBatch | None = None
        self._pacer: Any = None

    @cached_property
    def hook(self) -> OctopodsHook:
        return OctopodsHook(self.octopods_conn_id)

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            try:
                return super().execute(context)
            except AirflowSensorTimeout as err:
                if self._batch is None:
                    raise
                seen = self._batch.summary(timed_out=True)["message"]
                raise AirflowSensorTimeout(f"{err}: {seen}") from None
        from airflow_provider_octopods.triggers.octopods import OctopodsDeliveryTrigger

        self.defer(
            trigger=OctopodsDeliveryTrigger(
                message_ids=self._ids(),
                octopods_conn_id=self.octopods_conn_id,
                poll_interval=float(self.poke_interval),
                deadline=time.time() + float(self.timeout),
                target_status=self.target_status,
                accept_sent=self.accept_sent,
                min_delivered_ratio=self.min_delivered_ratio,
                fail_fast=self.fail_fast,
                max_in_flight=self.max_in_flight,
                reads_per_second=self.reads_per_second,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout) + 60),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Resume after the trigger: the same result as the classic mode, or the same failure."""
        if isinstance(event, dict) and event.get("read_errors"):
            self.log.warning("%d status read(s) failed unexpectedly and were made again", event["read_errors"])
        result = delivery_result(event, sensor=True)
        return self._result({key: value for key, value in result.items() if key != "read_errors"})

    def poke(self, context: Context) -> bool | PokeReturnValue:
        from airflow_provider_octopods.api.pacing import api_pacer

        if self._batch is None:
            self._batch = DeliveryBatch(self._ids(), self.policy)
        batch = self._batch
        if self._pacer is None:  # kept across pokes, so short poke intervals are paced too
            self._pacer = api_pacer(self.reads_per_second, clock=self._clock)
        pacer = self._pacer
        for message_id in batch.pending:
            self._sleep(pacer.reserve())
            try:
                batch.record(message_id, self.hook.get_status(message_id))
            except OctopodsNotFoundError as err:
                batch.record_failure(message_id, str(err))
            except OctopodsError as err:
                if not decide(Operation.STATUS, err).retry_task:
                    raise
                self.log.warning("Could not read the status of message %s this time: %s", message_id, err)
            if batch.decided:
                break
        summary = batch.summary()
        if not batch.decided:
            self.log.info("Still waiting: %s", summary["message"])
            return False
        self.log.info("Delivery decided: %s", summary["message"])
        return PokeReturnValue(is_done=True, xcom_value=self._result(delivery_result(summary, sensor=True)))

    def _result(self, summary: dict[str, Any]) -> Any:
        """One id gives that message's status; a list gives the whole summary."""
        if is_many(self.message_id):
            return summary
        [details] = summary["messages"].values()
        return details

    def _ids(self) -> list[MessageId]:
        try:
            return message_ids(self.message_id)
        except OctopodsValidationError as err:
            raise final(err) from None
