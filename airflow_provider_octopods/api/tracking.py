"""Following many messages to a verdict: one rule set for the sync sensor and the async trigger.

A :class:`DeliveryBatch` takes statuses as they are read and says which ids still need polling,
whether the outcome is decided, and produces the JSON-safe summary that triggers send as their
event and tasks push to XCom.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_octopods.api.delivery import DeliveryTarget, Verdict
from airflow_provider_octopods.api.errors import OctopodsValidationError
from airflow_provider_octopods.api.models import MessageId, MessageStatus
from airflow_provider_octopods.api.validation import validate_message_id

SUCCESS = "success"
FAILURE = "failure"
TIMEOUT = "timeout"
ERROR = "error"


@dataclass(frozen=True)
class BatchPolicy:
    """When a group of messages counts as delivered.

    :param target: the status each message must reach.
    :param min_delivered_ratio: the share of messages (0 < r <= 1) that must reach it; 1.0 = all.
    :param fail_fast: stop as soon as that share can no longer be reached, instead of waiting for
        every message to end and reporting them all.
    """

    target: DeliveryTarget = field(default_factory=DeliveryTarget)
    min_delivered_ratio: float = 1.0
    fail_fast: bool = True

    def __post_init__(self) -> None:
        ratio = self.min_delivered_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio <= 1:
            raise OctopodsValidationError("min_delivered_ratio", f"must be a number in (0, 1], got {ratio!r}")
        if not isinstance(self.fail_fast, bool):
            raise OctopodsValidationError("fail_fast", f"must be True or False, got {self.fail_fast!r}")

    def required(self, total: int) -> int:
        """How many of ``total`` messages must reach the target."""
        return math.ceil(total * self.min_delivered_ratio - 1e-9)


def is_many(value: object) -> bool:
    """Whether ``value`` is a list of ids, including a list rendered as text by a Jinja template."""
    return isinstance(value, (list, tuple)) or (isinstance(value, str) and value.strip().startswith("["))


def message_ids(value: object, *, field: str = "message_id") -> list[MessageId]:
    """One id or a list of ids (as rendered from XCom), validated and de-duplicated in order."""
    if isinstance(value, str) and is_many(value):
        try:
            value = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            raise OctopodsValidationError(field, f"{str(value)[:60]!r} is not a list of message ids") from None
    items = value if isinstance(value, (list, tuple)) else [value]
    if not items:
        raise OctopodsValidationError(field, "is an empty list: there is no message to wait for")
    seen: dict[MessageId, None] = {}
    for item in items:
        seen.setdefault(validate_message_id(item, field=field), None)
    return list(seen)


class DeliveryBatch:
    """The delivery state of a group of messages."""

    def __init__(self, ids: list[MessageId], policy: BatchPolicy) -> None:
        self.policy = policy
        self._status: dict[MessageId, str] = {}
        self._reason: dict[MessageId, str] = {}
        self._details: dict[MessageId, dict[str, Any]] = {}
        self._verdict: dict[MessageId, Verdict] = dict.fromkeys(ids, Verdict.PENDING)
        self._count = {Verdict.PENDING: len(self._verdict), Verdict.SUCCESS: 0, Verdict.FAILURE: 0}
        self.ids = list(self._verdict)  # in order, without repeats

    @property
    def pending(self) -> list[MessageId]:
        """Ids without a final verdict yet: the only ones worth polling."""
        return [i for i in self.ids if self._verdict[i] is Verdict.PENDING]

    @property
    def succeeded(self) -> list[MessageId]:
        return [i for i in self.ids if self._verdict[i] is Verdict.SUCCESS]

    @property
    def failed(self) -> list[MessageId]:
        return [i for i in self.ids if self._verdict[i] is Verdict.FAILURE]

    def is_pending(self, message_id: MessageId) -> bool:
        return self._verdict.get(message_id) is Verdict.PENDING

    def record(self, message_id: MessageId, status: MessageStatus) -> Verdict:
        """Take one status read; returns the message's verdict."""
        verdict = self.policy.target.judge(status)
        self._status[message_id] = status.status.value
        self._details[message_id] = status.to_dict()
        if status.reason:
            self._reason[message_id] = status.reason
        self._set(message_id, verdict)
        return verdict

    def record_failure(self, message_id: MessageId, reason: str) -> None:
        """Mark a message as failed for good without a status (e.g. the API does not know it)."""
        self._status[message_id] = "not_found"
        self._reason[message_id] = reason
        self._details[message_id] = {"message_id": message_id, "status": "not_found", "reason": reason}
        self._set(message_id, Verdict.FAILURE)

    def _set(self, message_id: MessageId, verdict: Verdict) -> None:
        self._count[self._verdict[message_id]] -= 1
        self._count[verdict] += 1
        self._verdict[message_id] = verdict

    @property
    def decided(self) -> bool:
        """True when polling more cannot change the outcome (constant time: called per read)."""
        if not self._count[Verdict.PENDING]:
            return True
        allowed_failures = len(self.ids) - self.policy.required(len(self.ids))
        return self.policy.fail_fast and self._count[Verdict.FAILURE] > allowed_failures

    def summary(self, *, timed_out: bool = False) -> dict[str, Any]:
        """The JSON-safe outcome: ``outcome`` is success, failure or timeout, with a one-line message."""
        total, delivered, failed, pending = len(self.ids), self.succeeded, self.failed, self.pending
        required = self.policy.required(total)
        target = self.policy.target.effective.value
        if len(delivered) >= required and (not pending or timed_out):
            outcome = SUCCESS
        elif timed_out and pending and len(delivered) + len(pending) >= required:
            outcome = TIMEOUT
        else:
            outcome = FAILURE
        message = f"{len(delivered)}/{total} message(s) reached '{target}' (needed {required})"
        if failed:
            shown = ", ".join(
                f"{i} ({self._status.get(i)}: {self._reason.get(i, 'no reason given')})" for i in failed[:5]
            )
            message += f"; failed: {shown}{' ...' if len(failed) > 5 else ''}"
        if pending:
            shown = ", ".join(str(i) for i in pending[:10])
            state = "still pending at the deadline" if timed_out else "not finished"
            message += f"; {state}: {shown}{' ...' if len(pending) > 10 else ''}"
        return {
            "outcome": outcome,
            "message": message,
            "target": target,
            "total": total,
            "delivered": delivered,
            "failed": {str(i): self._reason.get(i, self._status.get(i, "")) for i in failed},
            "pending": pending,
            "messages": {str(i): self.details(i) for i in self.ids},
        }

    def details(self, message_id: MessageId) -> dict[str, Any]:
        """The last status read of one message (``MessageStatus.to_dict()``), or a placeholder."""
        return self._details.get(message_id, {"message_id": message_id, "status": "unknown", "reason": None})
