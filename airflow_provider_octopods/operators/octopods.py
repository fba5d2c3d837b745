"""``OctopodsSendSmsOperator``: send one SMS from a DAG."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator, conf

from airflow_provider_octopods.api.delivery import DeliveryTarget
from airflow_provider_octopods.api.errors import OctopodsError, OctopodsValidationError
from airflow_provider_octopods.api.masking import mask_phone
from airflow_provider_octopods.api.tracking import BatchPolicy, DeliveryBatch
from airflow_provider_octopods.api.validation import coerce_bool, positive_number, validate_region
from airflow_provider_octopods.hooks.octopods import OctopodsHook
from airflow_provider_octopods.task_outcomes import delivery_result, task_error

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_octopods.api.models import MessageId

SEND_RESULT_XCOM_KEY = "send_result"
DELIVERY_STATUS_XCOM_KEY = "delivery_status"


class OctopodsSendSmsOperator(BaseOperator):
    """Send one SMS through Octopods and return its ``message_id`` (pushed to XCom).

    Every parameter is checked before anything is sent; a bad phone number or body fails the
    task at once, naming the parameter. Errors that another try cannot fix (bad key, invalid
    number, empty body, unknown outcome of a send) fail the task without Airflow retries.

    :param phone: recipient, E.164 (``+15551234567``) or national with ``default_region``. Templated.
    :param body: message text, 1 to 1,600 characters. Templated (rendered, then validated).
    :param octopods_conn_id: the ``octopods`` connection holding the channel API key.
    :param default_region: region (e.g. ``"GB"``) for numbers written without country code.
    :param destination_user_name: contact name for new contacts when a conversation is opened. Templated.
    :param open_intercom_conversation: also open an Intercom/HubSpot conversation.
    :param intercom_teammate_id: Intercom teammate shown as sender (ignored on HubSpot). Templated.
    :param wait_for_delivery: after sending, wait until the message reaches ``target_status``;
        the task fails at once if it fails or is undelivered.
    :param target_status: with ``wait_for_delivery``: ``"delivered"`` (default), ``"sent"`` or ``"read"``.
    :param accept_sent: with ``wait_for_delivery``: count ``sent`` as success (carriers without receipts).
    :param poll_interval: seconds between status reads while waiting.
    :param delivery_timeout: seconds to wait for delivery before failing the task.
    :param deferrable: with ``wait_for_delivery``: wait in the triggerer instead of holding a worker
        slot; defaults to ``[operators] default_deferrable``.

    The send result (request id, message id, masked phone, segments, encoding) is pushed under
    the XCom key ``send_result``; with ``wait_for_delivery`` the final status under ``delivery_status``.
    Once a message is sent, nothing later in the task is retried by Airflow: a retry would send it again.
    """

    template_fields: Sequence[str] = ("phone", "body", "destination_user_name", "intercom_teammate_id")
    ui_color = "#f0e4ff"

    def __init__(
        self,
        *,
        phone: str,
        body: str,
        octopods_conn_id: str = OctopodsHook.default_conn_name,
        default_region: str | None = None,
        destination_user_name: str | None = None,
        open_intercom_conversation: bool | str | None = None,
        intercom_teammate_id: str | None = None,
        wait_for_delivery: bool = False,
        target_status: str = "delivered",
        accept_sent: bool = False,
        poll_interval: float = 30.0,
        delivery_timeout: float = 3600.0,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        try:
            _require_str(phone, "phone")
            _require_str(body, "body")
            for name, flag in (("wait_for_delivery", wait_for_delivery), ("deferrable", deferrable)):
                if not isinstance(flag, bool):
                    raise OctopodsValidationError(name, f"must be True or False, got {flag!r}")
            self.delivery_target = DeliveryTarget.of(target_status, accept_sent)
            self.default_region = validate_region(default_region) if default_region else None
            self.open_intercom_conversation = coerce_bool(
                open_intercom_conversation, field="open_intercom_conversation"
            )
            self.poll_interval = positive_number(poll_interval, field="poll_interval")
            self.delivery_timeout = positive_number(delivery_timeout, field="delivery_timeout")
        except OctopodsValidationError as err:
            raise ValueError(f"{type(self).__name__} (task {self.task_id!r}) {err}") from None
        self.phone = phone
        self.body = body
        self.octopods_conn_id = octopods_conn_id
        self.destination_user_name = destination_user_name
        self.intercom_teammate_id = intercom_teammate_id
        self.wait_for_delivery = wait_for_delivery
        self.deferrable = deferrable
        self.target_status = target_status
        self.accept_sent = accept_sent

    @cached_property
    def hook(self) -> OctopodsHook:
        return OctopodsHook(self.octopods_conn_id, default_region=self.default_region)

    def execute(self, context: Context) -> MessageId | None:
        try:
            request = self.hook.build_send_request(
                self.phone,
                self.body,
                destination_user_name=self.destination_user_name,
                open_intercom_conversation=self.open_intercom_conversation,
                intercom_teammate_id=self.intercom_teammate_id,
            )
            result = self.hook.send(request)
        except OctopodsError as err:
            raise task_error(err) from None

        send_result = result.to_dict() | {"phone": mask_phone(result.phone)}
        context["ti"].xcom_push(key=SEND_RESULT_XCOM_KEY, value=send_result)
        if not result.trackable:
            self.log.warning(
                "The SMS was sent, but this workspace returns no message_id (HubSpot): delivery cannot "
                "be tracked%s. The task succeeds and returns None.",
                ", so wait_for_delivery is skipped" if self.wait_for_delivery else "",
            )
            return None
        assert result.message_id is not None
        if self.wait_for_delivery and self.deferrable:
            self._defer_waiting(result.message_id)
        if self.wait_for_delivery:
            final = self._wait_for_delivery(result.message_id)
            context["ti"].xcom_push(key=DELIVERY_STATUS_XCOM_KEY, value=final)
        return result.message_id

    def _defer_waiting(self, message_id: MessageId) -> None:
        """Hand the waiting to the triggerer; the send result is already in XCom, so it survives."""
        from airflow_provider_octopods.triggers.octopods import OctopodsDeliveryTrigger

        self.defer(
            trigger=OctopodsDeliveryTrigger(
                message_ids=[message_id],
                octopods_conn_id=self.octopods_conn_id,
                poll_interval=self.poll_interval,
                deadline=time.time() + self.delivery_timeout,
                target_status=self.target_status,
                accept_sent=self.accept_sent,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.delivery_timeout + 60),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> MessageId | None:
        """Resume after deferred waiting: push the final status and return the message id."""
        summary = delivery_result(event, sensor=False)
        [(message_id, final)] = summary["messages"].items()
        context["ti"].xcom_push(key=DELIVERY_STATUS_XCOM_KEY, value=final)
        return final.get("message_id", message_id)

    def _wait_for_delivery(self, message_id: MessageId) -> dict[str, Any]:
        """Poll until the target status, a failure, or the timeout. Never lets Airflow retry."""
        batch = DeliveryBatch([message_id], BatchPolicy(self.delivery_target))
        deadline = time.monotonic() + self.delivery_timeout
        while True:
            try:
                batch.record(message_id, self.hook.get_status(message_id))
            except OctopodsError as err:
                if not err.task_retry_safe:
                    raise task_error(err, retry_allowed=False) from None
                self.log.warning("Could not read the status of message %s yet: %s", message_id, err)
            if batch.decided:
                break
            if time.monotonic() + self.poll_interval > deadline:
                return delivery_result(batch.summary(timed_out=True), sensor=False)  # raises
            self.log.info("Waiting for delivery: %s", batch.summary()["message"])
            time.sleep(self.poll_interval)
        summary = delivery_result(batch.summary(), sensor=False)
        self.log.info("Delivery confirmed: %s", summary["message"])
        return batch.details(message_id)


def _require_str(value: object, field: str) -> None:
    if not isinstance(value, str):
        raise OctopodsValidationError(field, f"must be a string (Jinja templates allowed), got {type(value).__name__}")
