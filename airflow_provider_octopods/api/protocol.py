"""The wire protocol: URLs, headers, request bodies, and turning responses into results or errors.

Transports (``requests`` in the sync client, aiohttp in the async one) only move bytes; every
rule about what the bytes mean lives here, once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote, urlsplit

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
    OctopodsMalformedAnswerError,
    OctopodsNotFoundError,
    OctopodsRateLimitError,
    OctopodsServerError,
    OctopodsSmsRejectedError,
)
from airflow_provider_octopods.api.masking import mask_phone, server_text
from airflow_provider_octopods.api.models import MessageId, MessageStatus, SendRequest, SendResult

T = TypeVar("T")

AUTH_HEADER = "X-Octopods-Auth"
MESSAGES_PATH = "/api/v1/sms/messages"
USER_AGENT = f"airflow-provider-octopods/{__version__}"

# The most of an answer a client reads, counted after decompression. The API's answers are a few
# hundred bytes; anything larger is not the API, and reading it all could exhaust a worker's memory.
MAX_ANSWER_BYTES = 1024 * 1024

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


class CappedBody:
    """An answer's body as a client reads it in chunks, kept up to :data:`MAX_ANSWER_BYTES`."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._size = 0

    def add(self, chunk: bytes) -> bool:
        """Keep ``chunk`` (what fits of it); False once the cap is passed: stop reading."""
        self._size += len(chunk)
        over = self._size - MAX_ANSWER_BYTES
        self._chunks.append(chunk[: len(chunk) - over] if over > 0 else chunk)
        return over <= 0

    @property
    def body(self) -> bytes:
        return b"".join(self._chunks)


def capped_answer(
    operation: Operation, status: int, body: bytes, headers: Mapping[str, str], *, complete: bool
) -> RawResponse:
    """The answer a client read, at most :data:`MAX_ANSWER_BYTES` of it; both clients apply this rule.

    :param complete: whether ``body`` is the whole answer; False when reading stopped at the cap.
    :raises OctopodsError: for a 2xx answer over the cap, the error of an unreadable answer (a
        status read may be retried; a send's outcome is unknown). An error answer keeps its
        meaning (a 429 is still a 429) from its status alone.
    """
    if not complete and 200 <= status < 300:
        raise unreadable_answer(operation, status, f"the answer is over {MAX_ANSWER_BYTES // 1024} KiB")
    return RawResponse(status, body, headers)


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


_ENCODER = json.JSONEncoder(ensure_ascii=False)  # made once: json.dumps makes one a call for these options


def encode_send(request: SendRequest) -> bytes:
    return _ENCODER.encode(request.to_payload()).encode("utf-8")


@dataclass(frozen=True, slots=True)
class ApiCall(Generic[T]):
    """One call, fully described: what a transport sends, and how the answer is read."""

    operation: Operation
    method: str
    url: str
    body: bytes | None
    describe: Callable[[], str]  # for log lines: no key, phone masked (made only when a line needs it)
    parse: Callable[[RawResponse], T]
    error: Callable[[RawResponse], OctopodsError]

    @property
    def what(self) -> str:
        """The call in a few words, for log lines."""
        return self.describe()


def send_call(base_url: str, request: SendRequest, *, conn_id: str | None = None) -> ApiCall[SendResult]:
    """``POST /api/v1/sms/messages`` for ``request``."""
    return ApiCall(
        Operation.SEND,
        "POST",
        send_url(base_url),
        encode_send(request),
        lambda: f"send to {mask_phone(request.phone)}",
        lambda response: parse_send_response(response, request),
        lambda response: error_from_response(response, Operation.SEND, host=urlsplit(base_url).netloc, conn_id=conn_id),
    )


def status_call(base_url: str, message_id: MessageId, *, conn_id: str | None = None) -> ApiCall[MessageStatus]:
    """``GET /api/v1/sms/messages/{id}``."""
    return ApiCall(
        Operation.STATUS,
        "GET",
        status_url(base_url, message_id),
        None,
        lambda: f"status of message {message_id}",
        lambda response: parse_status_response(response, message_id),
        lambda response: error_from_response(
            response, Operation.STATUS, message_id=message_id, host=urlsplit(base_url).netloc, conn_id=conn_id
        ),
    )


def parse_send_response(response: RawResponse, request: SendRequest) -> SendResult:
    """A send's response as a result, or the error it stands for.

    Any 2xx means the API accepted the message. If its body cannot be read (not JSON, nested too
    deep, a ``message_id`` that is not an id), the message was probably sent but its id is
    unknown: that is reported as an unknown outcome, never retried.
    """
    if 200 <= response.status < 300:
        payload = _json_object(response)
        if payload is None:
            raise unreadable_answer(
                Operation.SEND, response.status, f"not the documented JSON: {_snippet(response.body)}"
            )
        try:
            return SendResult.from_response(payload, phone=request.phone, segments=request.segment_info)
        except OctopodsMalformedAnswerError as err:
            raise unreadable_answer(Operation.SEND, response.status, err.message) from None
    raise error_from_response(response, Operation.SEND)


def parse_status_response(response: RawResponse, message_id: MessageId) -> MessageStatus:
    """A status read's response as a typed status, or the error it stands for."""
    if 200 <= response.status < 300:
        payload = _json_object(response)
        if payload is None:
            raise unreadable_answer(
                Operation.STATUS, response.status, f"message {message_id}: {_snippet(response.body)}"
            )
        try:
            return MessageStatus.from_response(payload, message_id=message_id)
        except OctopodsMalformedAnswerError as err:
            raise unreadable_answer(Operation.STATUS, response.status, f"message {message_id}: {err.message}") from None
    raise error_from_response(response, Operation.STATUS, message_id=message_id)


def error_from_response(
    response: RawResponse,
    operation: Operation,
    *,
    message_id: MessageId | None = None,
    host: str | None = None,
    conn_id: str | None = None,
) -> OctopodsError:
    """Map a non-2xx response to the most specific error class.

    The server's texts it copies (``error``, ``request_id``, a page's first words) are cut short and
    their phone numbers masked.

    :param host: the API host (``host[:port]``) that answered, named when it refuses the key.
    :param conn_id: the Airflow connection the key came from, named when it is refused.
    """
    payload = _json_object(response) or {}
    code = _int_or_none(payload.get("error_code"))
    request_id = _server_field(payload.get("request_id"), limit=128)
    api_text = _server_field(payload.get("error"), limit=300)
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
        refused_by = f" by {host}" if host else ""
        return error(OctopodsAuthError, f"the API key was refused{refused_by} during {where}", conn_id=conn_id)
    if code is not None:
        name = ERROR_CODE_NAMES.get(code, "UNDOCUMENTED")
        text = f"{name}: {api_text}" if api_text else name
        if code == 1 and operation is Operation.STATUS:
            return error(OctopodsNotFoundError, f"message {message_id} was not found for this channel ({text})")
        if code == 5:
            return error(OctopodsDeprecatedKeyError, f"the API key was rotated or revoked ({text})", conn_id=conn_id)
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
    """An error code: a small non-negative integer, or a string of one; anything else is None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit() and len(value.strip()) <= 6:
        value = int(value.strip())
    if isinstance(value, int) and 0 <= value < 1_000_000:
        return value
    return None


def _server_field(value: object, *, limit: int) -> str | None:
    return server_text(value, limit=limit) if isinstance(value, str) and value.strip() else None


def _snippet(body: bytes, limit: int = 80) -> str:
    """A short, single-line excerpt of a body for error messages (HTML gateway pages etc.)."""
    text = server_text(body[: limit * 8].decode("utf-8", errors="replace"), limit=limit)
    return text or "empty body"


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
