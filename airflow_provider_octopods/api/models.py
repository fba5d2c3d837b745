"""Typed requests, results and the delivery-status model."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from functools import cached_property
from typing import Any

from airflow_provider_octopods.api.masking import mask_phone
from airflow_provider_octopods.api.segments import Encoding, SegmentInfo, count_segments

MessageId = int | str


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


@dataclass(frozen=True)
class SendRequest:
    """A validated send: build it with :func:`airflow_provider_octopods.api.build_send_request`."""

    phone: str
    body: str
    destination_user_name: str | None = None
    open_intercom_conversation: bool | None = None
    intercom_teammate_id: str | None = None

    @cached_property
    def segment_info(self) -> SegmentInfo:
        """How the body will be billed (segments, encoding); computed once per request."""
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


@dataclass(frozen=True)
class SendResult:
    """What a successful send returned.

    ``message_id`` is None on HubSpot workspaces, whose API returns only ``request_id``:
    such a message cannot be tracked (see :attr:`trackable`).
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

    @classmethod
    def from_response(cls, payload: dict[str, Any], *, phone: str, segments: SegmentInfo) -> SendResult:
        """Build from a 201 body; ``phone`` is the E.164 number we sent to."""
        message_id = payload.get("message_id")
        channel_id = payload.get("channel_message_id")
        return cls(
            request_id=_opt_str(payload.get("request_id")),
            message_id=message_id if isinstance(message_id, (int, str)) and message_id != "" else None,
            phone=phone,
            segments=segments.segments,
            encoding=segments.encoding,
            channel_message_id=None if channel_id is None else str(channel_id),
            raw=dict(payload),
        )


@dataclass(frozen=True)
class MessageStatus:
    """A delivery status read from ``GET /api/v1/sms/messages/{id}``, in either documented shape."""

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

    @classmethod
    def from_response(cls, payload: dict[str, Any], *, message_id: MessageId) -> MessageStatus:
        """Build from a 200 body of either shape (legacy upper-case or current lower-case)."""
        raw_status = payload.get("status")
        returned_id = payload.get("message_id")
        return cls(
            message_id=returned_id if isinstance(returned_id, (int, str)) else message_id,
            status=DeliveryStatus.parse(raw_status),
            raw_status=raw_status if isinstance(raw_status, str) else None,
            status_message=_opt_str(payload.get("status_message")),
            failure_reason=_opt_str(payload.get("failure_reason")),
            phone_number=_opt_str(payload.get("phone_number")),
            sent_at=parse_timestamp(payload.get("sent_at")),
            delivered_at=parse_timestamp(payload.get("delivered_at")),
            last_updated=parse_timestamp(payload.get("last_updated")),
            request_id=_opt_str(payload.get("request_id")),
            raw=dict(payload),
        )


def parse_timestamp(value: object) -> datetime | None:
    """Parse the API's ISO-8601 timestamps (``Z`` or offset); anything else is None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _opt_str(value: object) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
