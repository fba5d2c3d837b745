"""Reading a transport's exception: how far the request got, and a short reason.

Both clients (requests, aiohttp) hand their exceptions here, so a TLS failure, a refused
connection or a reset after sending means the same thing whichever client saw it. Only the
question "did the library fail while connecting?" is answered by each client, from its own
exception types.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator

from airflow_provider_octopods.api.decision import Operation, Stage, transport_error
from airflow_provider_octopods.api.errors import OctopodsError, OctopodsTLSError
from airflow_provider_octopods.api.masking import server_text

# OpenSSL reasons that can only occur while the TLS session is being set up, before any byte of
# the request is written. (Alerts in general can also arrive later, e.g. TLS 1.3 client
# certificate checks, so only these are taken as "nothing was sent".)
_HANDSHAKE_MARKERS = (
    "CERTIFICATE_VERIFY_FAILED",
    "WRONG_VERSION_NUMBER",
    "UNSUPPORTED_PROTOCOL",
    "NO_PROTOCOLS_AVAILABLE",
    "HANDSHAKE_FAILURE",
    "TLSV1_ALERT_PROTOCOL_VERSION",
    "TLSV1_UNRECOGNIZED_NAME",
)


def failure_from_exception(
    operation: Operation,
    exc: BaseException,
    *,
    host: str,
    connecting: bool,
    hint: str | None = None,
    handshake_done: bool = False,
) -> OctopodsError:
    """The error for ``exc`` raised by a transport while making ``operation`` to ``host``.

    :param connecting: the client's own reading of its exception type: it failed while
        connecting (refused, DNS, connect timeout), so the request never left this machine.
    :param hint: a sentence about the connection's settings worth adding (e.g. an assumed scheme).
    :param handshake_done: the client knows the TLS handshake had ended (it connects before it
        writes): a TLS error then came after the request went out, whatever its reason says.
    """
    tls = None if handshake_done else tls_handshake_failure(exc)
    if tls is not None:
        what = f"TLS verification of {host}" if "certif" in tls.lower() else f"TLS handshake with {host}"
        return OctopodsTLSError(
            f"{what} failed, nothing was sent: {tls}; "
            + (hint or "fix the host's certificate, or trust its CA with the connection's ca_bundle extra")
        )
    stage = Stage.NOT_SENT if connecting else Stage.NO_ANSWER
    detail = describe(exc, connecting=connecting)
    if hint and stage is Stage.NOT_SENT:
        detail = f"{detail}; {hint}"
    return transport_error(operation, stage, detail)


def deadline_passed(operation: Operation, seconds: float) -> OctopodsError:
    """The error for a try that was still waiting for (the rest of) its answer after ``seconds``,
    the most one try may take (``ClientSettings.try_timeout``). The request went out."""
    return transport_error(
        operation,
        Stage.NO_ANSWER,
        f"no complete answer within {seconds:g} s, the most one try may take (connect_timeout + read_timeout)",
    )


def tls_handshake_failure(exc: BaseException) -> str | None:
    """Why the TLS handshake failed, if ``exc`` is (or wraps) such a failure; else None."""
    for inner in _chain(exc):
        if not isinstance(inner, ssl.SSLError) or not hasattr(inner, "reason"):
            # Only the ssl module sets ``reason``. aiohttp's ClientConnectorSSLError and
            # ClientConnectorCertificateError subclass ssl's errors without it, and wrap the
            # error ssl raised, which comes later in the chain.
            continue
        if isinstance(inner, ssl.SSLCertVerificationError):
            return inner.verify_message or inner.reason or "certificate verify failed"
        reason = str(inner.reason or inner)
        if any(marker in reason.upper() for marker in _HANDSHAKE_MARKERS):
            return reason
    return None


def describe(exc: BaseException, *, connecting: bool = False) -> str:
    """``Outer: Inner: first line`` without URLs or headers (so never a key); at most 160 chars,
    phone numbers masked.

    :param connecting: as for :func:`failure_from_exception`; names which timeout expired.
    """
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)) or "Timeout" in type(exc).__name__:
        return "connect timeout" if connecting else "read timeout"
    innermost = exc
    for inner in _chain(exc):
        innermost = inner
    text = type(exc).__name__
    if innermost is not exc:
        text += f": {type(innermost).__name__}"
    message = str(innermost).strip().splitlines()[0] if str(innermost).strip() else ""
    if message and "://" not in message and "url:" not in message.lower():
        text += f": {message}"
    # Library messages may quote what the server sent (a bad status line, a header).
    return server_text(text, limit=160)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it wraps (cause, context, urllib3's ``reason``, exception args)."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen or len(seen) > 20:
            continue
        seen.add(id(current))
        yield current
        wrapped = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        todo.extend(w for w in wrapped if isinstance(w, BaseException))
