"""The wire protocol: URLs, headers, request bodies, and turning responses into results or errors.

Transports (the sync ``requests`` client, later the async one) only move bytes; every rule
about what the bytes mean lives here, once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from airflow_provider_octopods import __version__
from airflow_provider_octopods.api.decision import MAY_HAVE_BEEN_SENT, Operation, decide, unreadable_answer
from airflow_provider_octopods.api.errors import (
    OctopodsAPIError,
    OctopodsArgumentMissingError,
    OctopodsAuthError,
    OctopodsDeprecatedKeyError,
    OctopodsEmptyBodyError,
    OctopodsError,
    OctopodsInvalidPhoneError,
    OctopodsNotFoundError,
    OctopodsRateLimitError,
    OctopodsServerError,
    OctopodsSmsRejectedError,
)
from airflow_provider_octopods.api.masking import mask_phone
from airflow_provider_octopods.api.models import MessageId, MessageStatus, SendRequest, SendResult

T = TypeVar("T")

AUTH_HEADER = "X-Octopods-Auth"
MESSAGES_PATH = "/api/v1/sms/messages"
USER_AGENT = f"airflow-provider-octopods/{__version__}"

ERROR_CODE_NAMES = {
    1: "ARGUMENT_MISSING",
    2: "EMPTY_BODY",
    3: "PHONE_INVALID",
    4: "SMS_ERROR",
    5: "DEPRECATED_API_KEY",
}
_ERROR_CLASSES: dict[int, type[OctopodsAPIError]] = {
    1: OctopodsArgumentMissingError,
    2: OctopodsEmptyBodyError,
    3: OctopodsInvalidPhoneError,
    4: OctopodsSmsRejectedError,
    5: OctopodsDeprecatedKeyError,
}


@dataclass(frozen=True)
class RawResponse:
    """An HTTP response as any transport sees it."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None


def request_headers(api_key: str) -> dict[str, str]:
    """Headers for every call. The key goes only here, never into URLs, logs or errors.

    Transports set them on each request, never on a session a caller may share with other hosts.
    """
    return {
        AUTH_HEADER: api_key,
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": USER_AGENT,
    }


def send_url(base_url: str) -> str:
    return base_url.rstrip("/") + MESSAGES_PATH


def status_url(base_url: str, message_id: MessageId) -> str:
    return f"{base_url.rstrip('/')}{MESSAGES_PATH}/{quote(str(message_id), safe='')}"


def encode_send(request: SendRequest) -> bytes:
    return json.dumps(request.to_payload(), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class ApiCall(Generic[T]):
    """One call, fully described: what a transport sends, and how the answer is read."""

    operation: Operation
    method: str
    url: str
    body: bytes | None
    what: str  # for log lines: no key, phone masked
    parse: Callable[[RawResponse], T]
    error: Callable[[RawResponse], OctopodsError]


def send_call(base_url: str, request: SendRequest) -> ApiCall[SendResult]:
    """``POST /api/v1/sms/messages`` for ``request``."""
    return ApiCall(
        Operation.SEND,
        "POST",
        send_url(base_url),
        encode_send(request),
        f"send to {mask_phone(request.phone)}",
        lambda response: parse_send_response(response, request),
        lambda response: error_from_response(response, Operation.SEND),
    )


def status_call(base_url: str, message_id: MessageId) -> ApiCall[MessageStatus]:
    """``GET /api/v1/sms/messages/{id}``."""
    return ApiCall(
        Operation.STATUS,
        "GET",
        status_url(base_url, message_id),
        None,
        f"status of message {message_id}",
        lambda response: parse_status_response(response, message_id),
        lambda response: error_from_response(response, Operation.STATUS, message_id=message_id),
    )


def parse_send_response(response: RawResponse, request: SendRequest) -> SendResult:
    """A send's response as a result, or the error it stands for.

    Any 2xx means the API accepted the message. If its body cannot be read, the message was
    probably sent but its id is unknown: that is reported as an unknown outcome, never retried.
    """
    if 200 <= response.status < 300:
        payload = _json_object(response)
        if payload is None:
            raise unreadable_answer(
                Operation.SEND, response.status, f"not the documented JSON: {_snippet(response.body)}"
            )
        return SendResult.from_response(payload, phone=request.phone, segments=request.segment_info)
    raise error_from_response(response, Operation.SEND)


def parse_status_response(response: RawResponse, message_id: MessageId) -> MessageStatus:
    """A status read's response as a typed status, or the error it stands for."""
    if 200 <= response.status < 300:
        payload = _json_object(response)
        if payload is None:
            raise unreadable_answer(
                Operation.STATUS, response.status, f"message {message_id}: {_snippet(response.body)}"
            )
        return MessageStatus.from_response(payload, message_id=message_id)
    raise error_from_response(response, Operation.STATUS, message_id=message_id)


def error_from_response(
    response: RawResponse, operation: Operation, *, message_id: MessageId | None = None
) -> OctopodsError:
    """Map a non-2xx response to the most specific error class."""
    payload = _json_object(response) or {}
    code = _int_or_none(payload.get("error_code"))
    request_id = payload.get("request_id") if isinstance(payload.get("request_id"), str) else None
    api_text = payload.get("error") if isinstance(payload.get("error"), str) else None
    where = f"{operation.value} of message {message_id}" if message_id is not None else operation.value

    def error(cls: type[OctopodsAPIError], message: str, **extra: Any) -> OctopodsAPIError:
        return cls(message, error_code=code, request_id=request_id, http_status=response.status, **extra)

    if response.status == 429:
        return error(
            OctopodsRateLimitError,
            f"rate limited by the Octopods API during {where}",
            retry_after=parse_retry_after(response.header("Retry-After")),
        )
    if response.status >= 500:
        text = f"the Octopods API failed during {where}: HTTP {response.status} ({api_text or _snippet(response.body)})"
        if (
            operation is Operation.SEND
            and decide(operation, OctopodsServerError("", http_status=response.status)).maybe_sent
        ):
            text += f"; it may have processed the send before failing: {MAY_HAVE_BEEN_SENT}"
        return error(OctopodsServerError, text)
    if response.status in (401, 403) and code is None:
        return error(
            OctopodsAuthError,
            f"the API key was refused during {where} (HTTP {response.status}); check the connection's API key",
        )
    if code is not None:
        name = ERROR_CODE_NAMES.get(code, "UNDOCUMENTED")
        text = f"{name}: {api_text}" if api_text else name
        if code == 1 and operation is Operation.STATUS:
            return error(OctopodsNotFoundError, f"message {message_id} was not found for this channel ({text})")
        if code == 5:
            return error(
                OctopodsDeprecatedKeyError,
                f"the API key was rotated or revoked ({text}); put the current key in the connection",
            )
        cls = _ERROR_CLASSES.get(code, OctopodsAPIError)
        return error(cls, f"the Octopods API rejected the {where} ({text})")
    if response.status == 404:
        return error(
            OctopodsNotFoundError, f"not found during {where} (HTTP 404); is the connection's host the Octopods API?"
        )
    return error(
        OctopodsAPIError,
        f"unexpected answer from the Octopods API during {where}: HTTP {response.status} "
        f"({api_text or _snippet(response.body)})",
    )


def _json_object(response: RawResponse) -> dict[str, Any] | None:
    try:
        value = json.loads(response.body.decode("utf-8")) if response.body else None
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _int_or_none(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _snippet(body: bytes, limit: int = 80) -> str:
    """A short, single-line excerpt of a body for error messages (HTML gateway pages etc.)."""
    text = " ".join(body.decode("utf-8", errors="replace").split())
    if not text:
        return "empty body"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Parse ``Retry-After``: delta seconds or an HTTP date. Unparseable values give None."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max((when - (now or datetime.now(timezone.utc))).total_seconds(), 0.0)
