"""``OctopodsSendSmsOperator``: send one SMS from a DAG."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator, conf

from airflow_provider_octopods.api.decision import Operation, decide
from airflow_provider_octopods.api.delivery import DeliveryTarget
from airflow_provider_octopods.api.errors import OctopodsError, OctopodsValidationError
from airflow_provider_octopods.api.masking import mask_phone
from airflow_provider_octopods.api.tracking import BatchPolicy, DeliveryBatch
from airflow_provider_octopods.api.validation import (
    coerce_bool,
    normalize_phone,
    optional_text,
    positive_number,
    shown,
    validate_body,
    validate_conn_id,
    validate_region,
)
from airflow_provider_octopods.hooks.octopods import OctopodsHook
from airflow_provider_octopods.send_record import OPERATOR_SLOT
from airflow_provider_octopods.task_outcomes import delivery_result
from airflow_provider_octopods.templating import check_literal, refused_at_parse

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_octopods.api.models import MessageId

SEND_RESULT_XCOM_KEY = "send_result"
DELIVERY_STATUS_XCOM_KEY = "delivery_status"


class OctopodsSendSmsOperator(BaseOperator):
    """Send one SMS through Octopods and return its ``message_id`` (pushed to XCom).

    The SMS is sent at most once per task instance, whatever Airflow does with the task: a retry
    after a later error, a deferral or ``execution_timeout`` that expires while waiting for
    delivery, a killed worker, a failed task cleared by hand. A later try finds the send in the
    task instance's send record and goes on with the same ``message_id`` (see
    :mod:`airflow_provider_octopods.send_record`). A successful task cleared by hand sends again.

    Templated parameters accept literals, Jinja, ``XComArg`` (``task()``, ``op.output``) and mapped
    values; they are checked after rendering, before any request, and a bad value fails the task
    without retries, naming the parameter. A plain literal that is already invalid (``phone="12345"``)
    is refused when the DAG file is parsed.

    :param phone: recipient, E.164 (``+15551234567``) or national with ``default_region``. Templated.
    :param body: message text, 1 to 1,600 characters. Templated.
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
    :param delivery_timeout: seconds to wait for delivery; then the try fails and Airflow's
        ``retries`` apply (a retry resumes waiting, it does not send again).
    :param resend_unknown: when an earlier try's send has an unknown outcome (the worker died or
        the answer was lost after the request went out), send again instead of failing. The
        recipient may then get the SMS twice.
    :param deferrable: with ``wait_for_delivery``: wait in the triggerer instead of holding a worker
        slot; defaults to ``[operators] default_deferrable``.

    The send result (request id, message id, masked phone, segments, encoding) is pushed under
    the XCom key ``send_result``; with ``wait_for_delivery`` the final status under ``delivery_status``.
    """

    template_fields: Sequence[str] = ("phone", "body", "destination_user_name", "intercom_teammate_id")
    ui_color = "#f0e4ff"

    def __init__(
        self,
        *,
        phone: Any,
        body: Any,
        octopods_conn_id: str = OctopodsHook.default_conn_name,
        default_region: str | None = None,
        destination_user_name: Any = None,
        open_intercom_conversation: bool | str | None = None,
        intercom_teammate_id: Any = None,
        wait_for_delivery: bool = False,
        target_status: str = "delivered",
        accept_sent: bool = False,
        poll_interval: float = 30.0,
        delivery_timeout: float = 3600.0,
        resend_unknown: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        with refused_at_parse(f"{type(self).__name__} (task {self.task_id!r})"):
            for name, flag in (
                ("wait_for_delivery", wait_for_delivery),
                ("deferrable", deferrable),
                ("resend_unknown", resend_unknown),
            ):
                if not isinstance(flag, bool):
                    raise OctopodsValidationError(name, f"must be True or False, got {shown(flag)}")
            self.delivery_target = DeliveryTarget.of(target_status, accept_sent)
            validate_conn_id(octopods_conn_id)
            self.default_region = validate_region(default_region) if default_region else None
            self.open_intercom_conversation = coerce_bool(
                open_intercom_conversation, field="open_intercom_conversation"
            )
            self.poll_interval = positive_number(poll_interval, field="poll_interval")
            self.delivery_timeout = positive_number(delivery_timeout, field="delivery_timeout")
            check_literal(phone, lambda v: normalize_phone(v, default_region=self.default_region))
            check_literal(body, validate_body)
            check_literal(destination_user_name, lambda v: optional_text(v, field="destination_user_name"))
            check_literal(intercom_teammate_id, lambda v: optional_text(v, field="intercom_teammate_id"))
        self.phone = phone
        self.body = body
        self.octopods_conn_id = octopods_conn_id
        self.destination_user_name = destination_user_name
        self.intercom_teammate_id = intercom_teammate_id
        self.wait_for_delivery = wait_for_delivery
        self.resend_unknown = resend_unknown
        self.deferrable = deferrable
        self.target_status = target_status
        self.accept_sent = accept_sent
        self._phone_rendered = False
        self._rendered_phone: Any = None

    def _do_render_template_fields(
        self, parent: Any, template_fields: Iterable[str], context: Any, jinja_env: Any, seen_oids: set[int]
    ) -> None:
        # Airflow stores the attributes as they are after rendering (the UI's "Rendered Template"):
        # keep the rendered phone for execute and leave only its masked form there. Both the plain
        # and the mapped (partial/expand) rendering paths come through here.
        super()._do_render_template_fields(parent, template_fields, context, jinja_env, seen_oids)
        if parent is not self or (self._phone_rendered and self.phone == mask_phone(self._rendered_phone)):
            return
        self._phone_rendered = True
        self._rendered_phone = self.phone
        self.phone = mask_phone(self.phone)

    @property
    def phone_to_send(self) -> Any:
        """The rendered phone (``phone`` shows it masked once rendered), or ``phone`` before rendering."""
        return self._rendered_phone if self._phone_rendered else self.phone

    @cached_property
    def hook(self) -> OctopodsHook:
        return OctopodsHook(
            self.octopods_conn_id, default_region=self.default_region, resend_unknown=self.resend_unknown
        )

    def execute(self, context: Context) -> MessageId | None:
        request = self.hook.build_send_request(
            self.phone_to_send,
            self.body,
            destination_user_name=self.destination_user_name,
            open_intercom_conversation=self.open_intercom_conversation,
            intercom_teammate_id=self.intercom_teammate_id,
        )
        result = self.hook.send(request, slot=OPERATOR_SLOT)
        context["ti"].xcom_push(key=SEND_RESULT_XCOM_KEY, value=result.to_dict() | {"phone": mask_phone(result.phone)})
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
        """Hand the waiting to the triggerer; the send record keeps the send across the deferral."""
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
        self.hook.send_guard()  # taken up in this process, so it is deleted when the task succeeds
        summary = delivery_result(event, sensor=False)
        [(message_id, final)] = summary["messages"].items()
        context["ti"].xcom_push(key=DELIVERY_STATUS_XCOM_KEY, value=final)
        return final.get("message_id", message_id)

    def _wait_for_delivery(self, message_id: MessageId) -> dict[str, Any]:
        """Poll until the target status, a failure, or the timeout."""
        batch = DeliveryBatch([message_id], BatchPolicy(self.delivery_target))
        deadline = time.monotonic() + self.delivery_timeout
        while True:
            try:
                batch.record(message_id, self.hook.get_status(message_id))
            except OctopodsError as err:
                if not decide(Operation.STATUS, err).retry_task:
                    raise
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


from airflow_provider_octopods.batch.operator import OctopodsSendBatchOperator  # noqa: E402

__all__ = ["OctopodsSendBatchOperator", "OctopodsSendSmsOperator"]
