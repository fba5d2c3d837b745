"""When is a message "done"? One rule set for the operator, the sensor and (later) the trigger."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from airflow_provider_octopods.api.errors import OctopodsValidationError
from airflow_provider_octopods.api.models import DeliveryStatus, MessageStatus
from airflow_provider_octopods.api.validation import shown

TARGETS = (DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.READ)


class Outcome(str, Enum):
    """The one vocabulary of delivery outcomes.

    A message's status is judged ``PENDING`` (keep waiting), ``SUCCESS`` or ``FAILURE``; a group
    of messages ends in ``SUCCESS``, ``FAILURE``, ``TIMEOUT`` (the deadline came first) or
    ``ERROR`` (tracking itself stopped, e.g. a refused key).
    """

    PENDING = "pending"
    SUCCESS = "success"
    FAILURE = "failure"
    TIMEOUT = "timeout"
    ERROR = "error"


@dataclass(frozen=True)
class DeliveryTarget:
    """The status a waiter wants. ``accept_sent`` lowers any target to "sent"."""

    status: DeliveryStatus = DeliveryStatus.DELIVERED
    accept_sent: bool = False

    @classmethod
    def of(cls, target_status: object, accept_sent: object = False) -> DeliveryTarget:
        """Validate user input: ``target_status`` is one of sent, delivered, read."""
        if not isinstance(accept_sent, bool):
            raise OctopodsValidationError("accept_sent", f"must be True or False, got {shown(accept_sent)}")
        status = DeliveryStatus.parse(target_status) if isinstance(target_status, str) else None
        if status not in TARGETS:
            allowed = ", ".join(t.value for t in TARGETS)
            raise OctopodsValidationError("target_status", f"must be one of {allowed}, got {shown(target_status)}")
        return cls(status=status, accept_sent=accept_sent)

    @property
    def effective(self) -> DeliveryStatus:
        """The status that counts as success."""
        return DeliveryStatus.SENT if self.accept_sent else self.status

    def judge(self, status: MessageStatus) -> Outcome:
        """Failed/undelivered fail at once; reaching the target succeeds; all else is pending."""
        current = status.status
        if current.is_failure:
            return Outcome.FAILURE
        if current.progress >= self.effective.progress and current is not DeliveryStatus.DELETED:
            return Outcome.SUCCESS
        if current is DeliveryStatus.DELETED:
            # Deleted comes after delivery, so it satisfies "delivered" but can never become "read".
            return Outcome.SUCCESS if self.effective.progress <= 2 else Outcome.FAILURE
        return Outcome.PENDING


def describe(status: MessageStatus) -> str:
    """One line for logs and errors, e.g. ``message 42 is failed: not a valid mobile subscriber``."""
    text = f"message {status.message_id} is {status.status.value}"
    if status.raw_status and status.raw_status.lower() != status.status.value:
        text += f" (API said {status.raw_status!r})"
    return f"{text}: {status.reason}" if status.reason else text
