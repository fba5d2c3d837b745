"""``OctopodsDeliverySensor``: wait until an SMS is delivered, fail fast when it is not."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_octopods.api.delivery import DeliveryTarget, Verdict, describe
from airflow_provider_octopods.api.errors import OctopodsError, OctopodsValidationError
from airflow_provider_octopods.api.validation import validate_message_id
from airflow_provider_octopods.hooks.octopods import OctopodsHook
from airflow_provider_octopods.task_errors import task_error

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class OctopodsDeliverySensor(BaseSensorOperator):
    """Wait for an SMS to reach ``target_status``; fail as soon as it fails or is undelivered.

    Keeps poking while the message is queued, sent or unknown. On success the final status
    (status, reason, timestamps; no phone number) is pushed to XCom as ``return_value``.

    :param message_id: the id returned by the send, typically
        ``"{{ ti.xcom_pull(task_ids='send') }}"``. Templated.
    :param octopods_conn_id: the ``octopods`` connection; must be the channel that sent the message.
    :param target_status: ``"delivered"`` (default; a read receipt also counts), ``"sent"`` or ``"read"``.
    :param accept_sent: count ``sent`` as success, for carriers that never send delivery receipts.

    Other arguments (``poke_interval``, ``timeout``, ``mode="reschedule"``, ...) are the usual
    sensor ones. A status read that fails transiently (rate limit, 5xx, network) is retried by
    the client, and if it still fails, the sensor simply pokes again later.
    """

    template_fields: Sequence[str] = ("message_id",)
    ui_color = "#e4f0ff"

    def __init__(
        self,
        *,
        message_id: int | str,
        octopods_conn_id: str = OctopodsHook.default_conn_name,
        target_status: str = "delivered",
        accept_sent: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        try:
            if isinstance(message_id, bool) or not isinstance(message_id, (int, str)):
                raise OctopodsValidationError(
                    "message_id", f"must be an int or a templated str, got {type(message_id).__name__}"
                )
            self.delivery_target = DeliveryTarget.of(target_status, accept_sent)
        except OctopodsValidationError as err:
            raise ValueError(f"{type(self).__name__} (task {self.task_id!r}) {err}") from None
        self.message_id = message_id
        self.octopods_conn_id = octopods_conn_id
        self.target_status = target_status
        self.accept_sent = accept_sent

    @cached_property
    def hook(self) -> OctopodsHook:
        return OctopodsHook(self.octopods_conn_id)

    def poke(self, context: Context) -> bool | PokeReturnValue:
        message_id = self._message_id()
        try:
            status = self.hook.get_status(message_id)
        except OctopodsError as err:
            if err.task_retry_safe:
                self.log.warning("Could not read the status of message %s this time: %s", message_id, err)
                return False
            raise task_error(err) from None
        verdict = self.delivery_target.judge(status)
        if verdict is Verdict.FAILURE:
            raise task_error(OctopodsError(f"SMS delivery failed: {describe(status)}"))
        if verdict is Verdict.SUCCESS:
            self.log.info("Target %r reached: %s", self.delivery_target.effective.value, describe(status))
            return PokeReturnValue(is_done=True, xcom_value=status.to_dict())
        self.log.info("Still waiting: %s", describe(status))
        return False

    def _message_id(self) -> int | str:
        try:
            return validate_message_id(self.message_id)
        except OctopodsValidationError as err:
            raise task_error(err) from None
