"""Following many messages to a verdict: one rule set for the sync sensor and the async trigger.

A :class:`DeliveryBatch` takes statuses as they are read and says which ids still need polling,
whether the outcome is decided, and produces the JSON-safe summary that triggers send as their
event and tasks push to XCom.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_octopods.api.delivery import DeliveryTarget, Outcome
from airflow_provider_octopods.api.errors import OctopodsValidationError
from airflow_provider_octopods.api.models import MessageId, MessageStatus
from airflow_provider_octopods.api.validation import rendered_list, shown, validate_message_id

FULL_DETAILS_MAX_IDS = 100
"""Batches of at most this many ids carry every message's full status under ``messages``."""
# In batches above FULL_DETAILS_MAX_IDS, failure reasons share this budget (each cut to 40..200
# characters) so that even 10,000 failures serialize to well under 1 MB.
_REASONS_BUDGET_CHARS = 400_000
_REASON_CHARS = (40, 200)
_SHOWN_FAILED = 5
_SHOWN_PENDING = 10


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
            raise OctopodsValidationError("min_delivered_ratio", f"must be a number in (0, 1], got {shown(ratio)}")
        if not isinstance(self.fail_fast, bool):
            raise OctopodsValidationError("fail_fast", f"must be True or False, got {shown(self.fail_fast)}")

    def required(self, total: int) -> int:
        """How many of ``total`` messages must reach the target."""
        return math.ceil(total * self.min_delivered_ratio - 1e-9)


def is_many(value: object) -> bool:
    """Whether ``value`` is several ids: a list, any sequence (the ``.output`` of a mapped task
    arrives as Airflow's lazy sequence), or a list rendered as text by a Jinja template."""
    if isinstance(value, str):
        return value.strip().startswith("[")
    return isinstance(value, (Sequence, set, frozenset)) and not isinstance(value, (bytes, bytearray))


def message_ids(value: object, *, field: str = "message_id") -> list[MessageId]:
    """One id or a list of ids (as rendered from XCom), validated and de-duplicated in order."""
    if isinstance(value, str) and is_many(value):
        listed = rendered_list(value)
        if listed is None:
            raise OctopodsValidationError(field, f"{shown(value)} is not a list of message ids")
        value = listed
    items = list(value) if is_many(value) else [value]  # type: ignore[call-overload]
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
        self._verdict: dict[MessageId, Outcome] = dict.fromkeys(ids, Outcome.PENDING)
        self._count = {Outcome.PENDING: len(self._verdict), Outcome.SUCCESS: 0, Outcome.FAILURE: 0}
        self.ids = list(self._verdict)  # in order, without repeats

    @property
    def pending(self) -> list[MessageId]:
        """Ids without a final verdict yet: the only ones worth polling."""
        return [i for i in self.ids if self._verdict[i] is Outcome.PENDING]

    @property
    def succeeded(self) -> list[MessageId]:
        return [i for i in self.ids if self._verdict[i] is Outcome.SUCCESS]

    @property
    def failed(self) -> list[MessageId]:
        return [i for i in self.ids if self._verdict[i] is Outcome.FAILURE]

    def is_pending(self, message_id: MessageId) -> bool:
        return self._verdict.get(message_id) is Outcome.PENDING

    def record(self, message_id: MessageId, status: MessageStatus) -> Outcome:
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
        self._set(message_id, Outcome.FAILURE)

    def _set(self, message_id: MessageId, verdict: Outcome) -> None:
        self._count[self._verdict[message_id]] -= 1
        self._count[verdict] += 1
        self._verdict[message_id] = verdict

    @property
    def decided(self) -> bool:
        """True when polling more cannot change the outcome (constant time: called per read).

        That is when no message is pending, when the required share has already reached the
        target (the others need not be waited for), or, with ``fail_fast``, when that share can
        no longer be reached.
        """
        if not self._count[Outcome.PENDING]:
            return True
        total = len(self.ids)
        required = self.policy.required(total)
        if self._count[Outcome.SUCCESS] >= required:
            return True
        return self.policy.fail_fast and self._count[Outcome.FAILURE] > total - required

    def summary(self, *, timed_out: bool = False) -> dict[str, Any]:
        """The JSON-safe outcome, small enough for XCom and trigger events even for 10,000 ids.

        ``outcome`` is success, failure or timeout, with a one-line ``message``. ``delivered`` and
        ``pending`` list ids; ``failed`` maps ids to reasons (in batches of more than 100 ids, cut
        to 200 characters, down to 40 when thousands failed); ``statuses`` maps every id to its
        last status; the ``*_count`` keys count them. ``messages`` (every message's full status)
        is only present for batches of at most :data:`FULL_DETAILS_MAX_IDS` ids: use
        :meth:`details` for one message of a larger batch.

        :param timed_out: the deadline was reached: messages still pending make it a timeout.
        """
        total, delivered, failed, pending = len(self.ids), self.succeeded, self.failed, self.pending
        required = self.policy.required(total)
        target = self.policy.target.effective.value
        if len(delivered) >= required:
            outcome = Outcome.SUCCESS.value
        elif timed_out and pending and len(delivered) + len(pending) >= required:
            outcome = Outcome.TIMEOUT.value
        else:
            outcome = Outcome.FAILURE.value
        message = f"{len(delivered)}/{total} message(s) reached '{target}' (needed {required})"
        if timed_out:
            message += (
                f"; seen by the deadline: {len(delivered)} delivered, {len(failed)} failed, "
                f"{len(pending)} still pending"
            )
        if failed:
            shown = ", ".join(
                f"{i} ({self._status.get(i)}: {_cut(self._reason.get(i, 'no reason given'), _REASON_CHARS[1])})"
                for i in failed[:_SHOWN_FAILED]
            )
            message += f"; failed: {shown}{_more(len(failed), _SHOWN_FAILED)}"
        if pending:
            shown = ", ".join(str(i) for i in pending[:_SHOWN_PENDING])
            state = "still pending at the deadline" if timed_out else "not final"
            message += f"; {state}: {shown}{_more(len(pending), _SHOWN_PENDING)}"
        large = total > FULL_DETAILS_MAX_IDS
        low, high = _REASON_CHARS
        cut = max(low, min(high, _REASONS_BUDGET_CHARS // max(len(failed), 1))) if large else None
        summary: dict[str, Any] = {
            "outcome": outcome,
            "message": message,
            "target": target,
            "total": total,
            "delivered": delivered,
            "failed": {str(i): self._failure_reason(i, max_chars=cut) for i in failed},
            "pending": pending,
            "delivered_count": len(delivered),
            "failed_count": len(failed),
            "pending_count": len(pending),
            "statuses": {str(i): self._status.get(i, "unknown") for i in self.ids},
        }
        if not large:
            summary["messages"] = {str(i): self.details(i) for i in self.ids}
        return summary

    def details(self, message_id: MessageId) -> dict[str, Any]:
        """The last status read of one message (``MessageStatus.to_dict()``), or a placeholder.

        :param message_id: one of the batch's ids.
        """
        return self._details.get(message_id, {"message_id": message_id, "status": "unknown", "reason": None})

    def _failure_reason(self, message_id: MessageId, *, max_chars: int | None) -> str:
        reason = self._reason.get(message_id, self._status.get(message_id, ""))
        return reason if max_chars is None else _cut(reason, max_chars)


def _cut(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[: max_chars - 3] + "..."


def _more(count: int, shown: int) -> str:
    return f" ... {count - shown} more" if count > shown else ""
