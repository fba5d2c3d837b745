"""Typed requests, results and the delivery-status model."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import Enum
from typing import Any

from airflow_provider_octopods.api.errors import OctopodsMalformedAnswerError
from airflow_provider_octopods.api.masking import mask_phone, server_text
from airflow_provider_octopods.api.segments import Encoding, SegmentInfo, count_segments

MessageId = int | str

# A message id in an answer: a positive integer (as JSON number or string of digits) that fits a
# signed 64-bit column, or a short token of letters, digits, "_" and "-" (the form users may give).
MAX_MESSAGE_ID = 2**63 - 1
_ID_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")  # so never "-1" nor "---"
_NOT_AN_ID = frozenset({"null", "none", "nil", "undefined", "nan", "true", "false"})
_MAX_ID_CHARS = 128
_MAX_PHONE_CHARS = 32
_MAX_TEXT_CHARS = 500


class DeliveryStatus(str, Enum):
    """A message's delivery status, normalised from any documented spelling."""

    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    DELETED = "deleted"
    FAILED = "failed"
    UNDELIVERED = "undelivered"
    UNKNOWN = "unknown"

    @classmethod
    def parse(cls, value: object) -> DeliveryStatus:
        """Map an API status (any case) to a member; anything unrecognised is UNKNOWN."""
        if isinstance(value, str):
            try:
                return cls(value.strip().lower())
            except ValueError:
                return cls.UNKNOWN
        return cls.UNKNOWN

    @property
    def is_failure(self) -> bool:
        """True for the terminal failures: failed, undelivered."""
        return self in (DeliveryStatus.FAILED, DeliveryStatus.UNDELIVERED)

    @property
    def is_terminal(self) -> bool:
        """True when the status will not change any more (for delivery purposes)."""
        return self.is_failure or self in (DeliveryStatus.DELIVERED, DeliveryStatus.READ, DeliveryStatus.DELETED)

    @property
    def progress(self) -> int:
        """How far along the success path a status is: queued/unknown 0, sent 1, delivered 2, read 3."""
        return _PROGRESS.get(self, 0)


_PROGRESS = {
    DeliveryStatus.SENT: 1,
    DeliveryStatus.DELIVERED: 2,
    DeliveryStatus.DELETED: 2,
    DeliveryStatus.READ: 3,
}


def message_id_from_answer(value: object) -> MessageId:
    """``value`` as a message id, or :class:`OctopodsMalformedAnswerError` if it cannot be one."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_MESSAGE_ID:
        return value
    if (
        isinstance(value, str)
        and _ID_TOKEN.fullmatch(value)
        and value.lower() not in _NOT_AN_ID
        and (not value.isdigit() or 0 < int(value) <= MAX_MESSAGE_ID)
    ):
        return value
    raise OctopodsMalformedAnswerError(f"its message_id is not a message id ({_describe(value)})")


def same_message(first: MessageId, second: MessageId) -> bool:
    """Whether two ids name one message (``42`` and ``"42"`` do)."""
    return str(first) == str(second)


def _describe(value: object) -> str:
    if value is None or isinstance(value, bool):
        return f"got {value!r}"
    if isinstance(value, str):
        shown = server_text(value, limit=40)
        return f"got a string of {len(value)} characters: {shown!r}" if len(value) > 40 else f"got {shown!r}"
    if isinstance(value, int):
        return "got 0 or a negative number" if value <= 0 else "got a number above 2**63-1"
    return f"got a JSON {type(value).__name__}"


def _repr_with_masked_phone(obj: Any) -> str:
    """The dataclass repr of ``obj`` with its phone fields masked (reprs land in logs)."""
    shown = []
    for item in fields(obj):
        if not item.repr:
            continue
        value = getattr(obj, item.name)
        if item.name in ("phone", "phone_number") and value is not None:
            value = mask_phone(value)
        shown.append(f"{item.name}={value!r}")
    return f"{type(obj).__name__}({', '.join(shown)})"


@dataclass(frozen=True, slots=True)
class SendRequest:
    """A validated send: build it with :func:`airflow_provider_octopods.api.build_send_request`."""

    phone: str
    body: str
    destination_user_name: str | None = None
    open_intercom_conversation: bool | None = None
    intercom_teammate_id: str | None = None

    @property
    def segment_info(self) -> SegmentInfo:
        """How the body will be billed (segments, encoding). Counted at each call: a cache would
        need an instance dict, and a batch holds one request per row."""
        return count_segments(self.body)

    def to_payload(self) -> dict[str, Any]:
        """The JSON body of ``POST /api/v1/sms/messages``; optional fields only when set."""
        payload: dict[str, Any] = {"destination_phone": self.phone, "body": self.body}
        if self.destination_user_name is not None:
            payload["destination_user_name"] = self.destination_user_name
        if self.open_intercom_conversation is not None:
            payload["open_intercom_conversation"] = self.open_intercom_conversation
        if self.intercom_teammate_id is not None:
            payload["intercom_teammate_id"] = self.intercom_teammate_id
        return payload

    def __repr__(self) -> str:
        return _repr_with_masked_phone(self)


@dataclass(frozen=True)
class SendResult:
    """What a successful send returned.

    ``message_id`` is None on HubSpot workspaces, whose API returns only ``request_id``:
    such a message cannot be tracked (see :attr:`trackable`). Its ``repr`` masks the phone number.

    :ivar request_id: the API's trace id of the send.
    :ivar message_id: the message's id, to read its status; None on HubSpot workspaces.
    :ivar phone: the E.164 number sent to (masked in ``repr`` and ``to_dict``).
    :ivar segments: how many SMS segments the body takes.
    :ivar encoding: ``GSM-7`` or ``UCS-2``.
    :ivar channel_message_id: the SMS provider's own id, when the API gives it.
    :ivar raw: the answer as received (not in ``to_dict``).
    """

    request_id: str | None
    message_id: MessageId | None
    phone: str
    segments: int
    encoding: Encoding
    channel_message_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def trackable(self) -> bool:
        """Whether a delivery status can be read for this message."""
        return self.message_id is not None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe summary for XCom: no raw payload, no key, and the phone number masked."""
        return {
            "request_id": self.request_id,
            "message_id": self.message_id,
            "phone": mask_phone(self.phone),
            "segments": self.segments,
            "encoding": self.encoding.value,
            "channel_message_id": self.channel_message_id,
        }

    def __repr__(self) -> str:
        return _repr_with_masked_phone(self)

    @classmethod
    def from_response(cls, payload: dict[str, Any], *, phone: str, segments: SegmentInfo) -> SendResult:
        """Build from a 201 body; ``phone`` is the E.164 number we sent to.

        A body without ``message_id`` is the HubSpot shape (untrackable); a ``message_id`` that is
        there but is not an id (null included) raises :class:`OctopodsMalformedAnswerError`.
        """
        if not isinstance(payload, dict):
            raise OctopodsMalformedAnswerError(f"the send answer is a JSON {type(payload).__name__}, not an object")
        return cls(
            request_id=_opt_id(payload.get("request_id")),
            message_id=message_id_from_answer(payload["message_id"]) if "message_id" in payload else None,
            phone=phone,
            segments=segments.segments,
            encoding=segments.encoding,
            channel_message_id=_opt_id(payload.get("channel_message_id")),
            raw=dict(payload),
        )


@dataclass(frozen=True)
class MessageStatus:
    """A delivery status read from ``GET /api/v1/sms/messages/{id}``, in either documented shape.

    Texts from the answer are cut to a few hundred characters with phone numbers masked; the
    ``repr`` masks ``phone_number`` too.

    :ivar message_id: the message's id.
    :ivar status: the normalised :class:`~airflow_provider_octopods.api.models.DeliveryStatus`.
    :ivar raw_status: the status as the API spelled it.
    :ivar status_message: the API's explanation (legacy shape).
    :ivar failure_reason: the carrier's reason for a failure (current shape).
    :ivar phone_number: the recipient as the API echoed it (left out of ``to_dict``).
    :ivar sent_at: when the message was sent, if known.
    :ivar delivered_at: when it was delivered, if known.
    :ivar last_updated: when the status last changed (legacy shape).
    :ivar request_id: the API's trace id of the read.
    :ivar raw: the answer as received.
    """

    message_id: MessageId
    status: DeliveryStatus
    raw_status: str | None
    status_message: str | None = None
    failure_reason: str | None = None
    phone_number: str | None = None
    sent_at: datetime | None = None
    delivered_at: datetime | None = None
    last_updated: datetime | None = None
    request_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def reason(self) -> str | None:
        """The most specific explanation the API gave (failure reason, else status message)."""
        return self.failure_reason or self.status_message

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe summary for XCom; the phone number is left out (it is personal data)."""
        return {
            "message_id": self.message_id,
            "status": self.status.value,
            "raw_status": self.raw_status,
            "reason": self.reason,
            "sent_at": _iso(self.sent_at),
            "delivered_at": _iso(self.delivered_at),
            "last_updated": _iso(self.last_updated),
            "request_id": self.request_id,
        }

    def __repr__(self) -> str:
        return _repr_with_masked_phone(self)

    @classmethod
    def from_response(cls, payload: dict[str, Any], *, message_id: MessageId) -> MessageStatus:
        """Build from a 200 body of either shape (legacy upper-case or current lower-case).

        :param message_id: the id that was asked about. An answer naming another message, or a
            ``message_id`` that is not an id, raises :class:`OctopodsMalformedAnswerError`; an
            answer without one (or with null) is taken as about ``message_id``.
        """
        if not isinstance(payload, dict):
            raise OctopodsMalformedAnswerError(f"the status answer is a JSON {type(payload).__name__}, not an object")
        raw_status = payload.get("status")
        returned = payload.get("message_id")
        if returned is not None and not same_message(message_id_from_answer(returned), message_id):
            raise OctopodsMalformedAnswerError(
                f"the status answer is about message {returned}, not about message {message_id}"
            )
        return cls(
            message_id=message_id,
            status=DeliveryStatus.parse(raw_status),
            raw_status=server_text(raw_status, limit=64) if isinstance(raw_status, str) else None,
            status_message=_opt_text(payload.get("status_message")),
            failure_reason=_opt_text(payload.get("failure_reason")),
            phone_number=_opt_phone(payload.get("phone_number")),
            sent_at=parse_timestamp(payload.get("sent_at")),
            delivered_at=parse_timestamp(payload.get("delivered_at")),
            last_updated=parse_timestamp(payload.get("last_updated")),
            request_id=_opt_id(payload.get("request_id")),
            raw=dict(payload),
        )


def parse_timestamp(value: object) -> datetime | None:
    """Parse the API's ISO-8601 timestamps (``Z`` or offset); anything else is None."""
    if not isinstance(value, str) or not value or len(value) > 64:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _opt_text(value: object) -> str | None:
    """A server's explanation, safe for logs and errors; None unless a non-empty string."""
    if not isinstance(value, str) or not value.strip():
        return None
    return server_text(value, limit=_MAX_TEXT_CHARS)


def _opt_id(value: object) -> str | None:
    """An identifier from the server (``request_id``, ``channel_message_id``) as a short string."""
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        return None
    if isinstance(value, int) and value.bit_length() > 128:
        return None
    return server_text(str(value), limit=_MAX_ID_CHARS)


def _opt_phone(value: object) -> str | None:
    if not isinstance(value, str) or not value or len(value) > _MAX_PHONE_CHARS:
        return None
    return value


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
