"""Hostile answers: too large (gzip bombs included), too slow, nested too deep, or lying about the
message id. Each ends in the provider's own error, with the retry rules of ``api.decision``.

The answers come from a small threaded server on 127.0.0.1 that writes raw bytes, so both real
clients (requests and aiohttp) read them through their full HTTP stacks.
"""

from __future__ import annotations

import gzip
import json
import time
import tracemalloc
import zlib
from collections.abc import Callable
from functools import cache
from typing import Any

import pytest

from airflow_provider_octopods.api import errors, protocol
from airflow_provider_octopods.api.decision import Operation, decide
from airflow_provider_octopods.api.protocol import (
    MAX_ANSWER_BYTES,
    RawResponse,
    error_from_response,
    parse_send_response,
    parse_status_response,
)
from airflow_provider_octopods.clients import aio
from tests.security.conftest import (
    BOTH_CLIENTS,
    DELIVERED,
    REQUEST,
    SENT,
    Make,
    RawServer,
    answer,
    make_sync,
    settings_for,
    trickle,
)

# Answers too large to read: both clients stop at one cap, counted after decompression.


def test_both_clients_share_one_cap() -> None:
    assert aio.MAX_ANSWER_BYTES is protocol.MAX_ANSWER_BYTES == 1024 * 1024


def padded(payload: dict[str, Any], size: int) -> bytes:
    return json.dumps({**payload, "padding": "x" * size}).encode()


@BOTH_CLIENTS
@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
def test_an_oversize_send_answer_is_an_unknown_outcome(
    serve: Callable[..., RawServer], make: Make, gzipped: bool
) -> None:
    body = padded(SENT, 3 * MAX_ANSWER_BYTES)
    reply = answer(201, gzip.compress(body), **{"Content-Encoding": "gzip"}) if gzipped else answer(201, body)
    if gzipped:
        assert len(gzip.compress(body)) < MAX_ANSWER_BYTES  # too large only once decompressed
    server = serve(reply)
    with pytest.raises(errors.OctopodsUnknownOutcomeError, match="over 1024 KiB") as err:
        make(settings_for(server.url), Operation.SEND, 4)
    assert decide(Operation.SEND, err.value).maybe_sent
    assert len(server.seen) == 1  # never repeated


@BOTH_CLIENTS
def test_an_oversize_status_answer_is_retried(serve: Callable[..., RawServer], make: Make) -> None:
    server = serve(answer(200, padded(DELIVERED, 2 * MAX_ANSWER_BYTES)), answer(200, DELIVERED))
    status = make(settings_for(server.url), Operation.STATUS, 4)
    assert status.status.value == "delivered"  # type: ignore[attr-defined]
    assert len(server.seen) == 2


@BOTH_CLIENTS
@pytest.mark.parametrize(
    ("status", "cls"), [(400, errors.OctopodsAPIError), (429, errors.OctopodsRateLimitError)], ids=["400", "429"]
)
def test_an_oversize_error_answer_keeps_its_status(
    serve: Callable[..., RawServer], make: Make, status: int, cls: type[errors.OctopodsError]
) -> None:
    server = serve(answer(status, b"<html>" + b"x" * (2 * MAX_ANSWER_BYTES)))
    with pytest.raises(cls) as err:
        make(settings_for(server.url), Operation.SEND, 1)
    assert f"HTTP {status}" in str(err.value)
    assert len(str(err.value)) < 1000


@BOTH_CLIENTS
def test_an_answer_of_exactly_the_cap_is_read(serve: Callable[..., RawServer], make: Make) -> None:
    payload = json.dumps(DELIVERED).encode()
    body = payload[:-1] + b" " * (MAX_ANSWER_BYTES - len(payload)) + payload[-1:]
    assert len(body) == MAX_ANSWER_BYTES
    server = serve(answer(200, body))
    assert make(settings_for(server.url), Operation.STATUS, 1).status.value == "delivered"  # type: ignore[attr-defined]


@cache
def gzip_bomb(megabytes: int) -> bytes:
    """``megabytes`` MiB of zeros, gzipped (about 1 KiB on the wire per MiB)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1024 * 1024)
    return b"".join(packer.compress(zeros) for _ in range(megabytes)) + packer.flush()


@BOTH_CLIENTS
def test_a_gzip_bomb_costs_no_more_memory_than_the_cap(serve: Callable[..., RawServer], make: Make) -> None:
    bomb = gzip_bomb(512)
    assert len(bomb) < MAX_ANSWER_BYTES
    server = serve(answer(201, bomb, **{"Content-Encoding": "gzip"}))
    tracemalloc.start()
    try:
        with pytest.raises(errors.OctopodsUnknownOutcomeError, match="over 1024 KiB"):
            make(settings_for(server.url), Operation.SEND, 1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 * 1024 * 1024  # 512 MiB once decompressed


# A total deadline per try: an answer trickling in never ends a try that has used its time.

TRICKLED_HEAD = b"HTTP/1.1 201 Created\r\nX-Slow: "
TRICKLED_BODY = b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"


@BOTH_CLIENTS
@pytest.mark.parametrize("prefix", [TRICKLED_HEAD, TRICKLED_BODY], ids=["headers", "body"])
def test_a_trickling_send_answer_ends_at_the_deadline_as_an_unknown_outcome(
    serve: Callable[..., RawServer], make: Make, prefix: bytes
) -> None:
    # Each byte comes well within read_timeout: without a total deadline this takes 30 s.
    server = serve(trickle(prefix, every=0.1, seconds=30))
    settings = settings_for(server.url, connect_timeout=0.5, read_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(errors.OctopodsUnknownOutcomeError) as err:
        make(settings, Operation.SEND, 4)
    assert time.monotonic() - started < 15
    assert "no complete answer within 1.5 s" in str(err.value)
    assert "may or may not have been sent" in str(err.value)
    assert len(server.seen) == 1


@BOTH_CLIENTS
def test_a_trickling_status_answer_ends_at_the_deadline_and_is_retried(
    serve: Callable[..., RawServer], make: Make
) -> None:
    server = serve(trickle(TRICKLED_BODY, every=0.1, seconds=30), answer(200, DELIVERED))
    settings = settings_for(server.url, connect_timeout=0.5, read_timeout=1.0)
    started = time.monotonic()
    status = make(settings, Operation.STATUS, 2)
    assert time.monotonic() - started < 15
    assert status.status.value == "delivered"  # type: ignore[attr-defined]
    assert len(server.seen) == 2


@BOTH_CLIENTS
def test_a_status_read_that_keeps_trickling_fails_with_the_deadline(
    serve: Callable[..., RawServer], make: Make
) -> None:
    server = serve(trickle(TRICKLED_HEAD, every=0.1, seconds=30))
    settings = settings_for(server.url, connect_timeout=0.5, read_timeout=1.0)
    with pytest.raises(errors.OctopodsServerError, match=r"no answer .*no complete answer within 1.5 s"):
        make(settings, Operation.STATUS, 1)


# A TLS record header announcing 16 KiB of handshake, whose bytes then trickle in.
TRICKLED_HANDSHAKE = b"\x16\x03\x03\x40\x00"


@BOTH_CLIENTS
def test_a_trickling_tls_handshake_ends_within_the_try_as_not_sent(serve: Callable[..., RawServer], make: Make) -> None:
    # The server never finishes the handshake, yet each byte comes well within connect_timeout.
    server = serve(trickle(TRICKLED_HANDSHAKE, every=0.1, seconds=30), reads_request=False)
    https = settings_for(server.url.replace("http://", "https://"), connect_timeout=0.5, read_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(errors.OctopodsTransportError, match="nothing was sent") as err:
        make(https, Operation.SEND, 1)
    assert time.monotonic() - started < 10
    assert "connect timeout" in str(err.value)
    assert not isinstance(err.value, errors.OctopodsUnknownOutcomeError)
    assert decide(Operation.SEND, err.value).retry_call
    assert server.accepted == 1


# JSON nested thousands deep


DEEP = b"[" * 100_000 + b"]" * 100_000
DEEP_BODIES = [DEEP, b'{"message_id": ' + DEEP + b"}", b'{"error": ' + DEEP + b', "error_code": 3}']


@pytest.mark.parametrize("body", DEEP_BODIES, ids=["top", "in-message-id", "in-error"])
def test_deep_json_is_an_unreadable_answer_never_a_recursion_error(body: bytes) -> None:
    with pytest.raises(errors.OctopodsUnknownOutcomeError, match="not the documented JSON"):
        parse_send_response(RawResponse(201, body), REQUEST)
    with pytest.raises(errors.OctopodsServerError, match="not the documented JSON"):
        parse_status_response(RawResponse(200, body), 42)
    error = error_from_response(RawResponse(400, body), Operation.SEND)
    assert type(error) is errors.OctopodsAPIError
    assert "HTTP 400" in str(error)
    assert len(str(error)) < 500


# message_id: an id is a positive integer or a short token; anything else is a malformed answer


NOT_IDS = [
    None,
    True,
    False,
    0,
    -7,
    2**64,
    1.5,
    "",
    "null",
    "None",
    "0",
    "x" * (1024 * 1024),
    "4" * 80,
    "42; DROP",
    "../42",
    "-1",
    "---",
    "true",
    [42],
    {"id": 42},
]


@pytest.mark.parametrize("value", NOT_IDS, ids=lambda v: f"{type(v).__name__}-{str(v)[:12]}")
def test_a_send_answer_with_a_message_id_that_is_not_an_id_is_an_unknown_outcome(value: object) -> None:
    body = json.dumps({"request_id": "r", "message_id": value}).encode()
    with pytest.raises(errors.OctopodsUnknownOutcomeError, match="its message_id is not a message id") as err:
        parse_send_response(RawResponse(201, body), REQUEST)
    assert decide(Operation.SEND, err.value).maybe_sent
    assert len(str(err.value)) < 700


@pytest.mark.parametrize("value", [4829174, "4829174", 2**63 - 1, "SM-abc_123", "a" * 64])
def test_documented_message_ids_are_kept_as_given(value: object) -> None:
    body = json.dumps({"request_id": "r", "message_id": value}).encode()
    assert parse_send_response(RawResponse(201, body), REQUEST).message_id == value


def test_an_answer_without_message_id_is_the_untrackable_hubspot_shape() -> None:
    result = parse_send_response(RawResponse(201, b'{"request_id": "r"}'), REQUEST)
    assert (result.message_id, result.trackable) == (None, False)


@pytest.mark.parametrize("value", NOT_IDS[1:], ids=lambda v: f"{type(v).__name__}-{str(v)[:12]}")
def test_a_status_answer_with_a_message_id_that_is_not_an_id_is_unreadable(value: object) -> None:
    body = json.dumps({"message_id": value, "status": "delivered"}).encode()
    with pytest.raises(errors.OctopodsServerError, match="message 42: its message_id is not a message id"):
        parse_status_response(RawResponse(200, body), 42)


@pytest.mark.parametrize("other", [43, "43", "SM1"])
def test_a_status_answer_about_another_message_is_not_adopted(other: object) -> None:
    body = json.dumps({"message_id": other, "status": "failed"}).encode()
    with pytest.raises(errors.OctopodsServerError, match=f"about message {other}, not about message 42") as err:
        parse_status_response(RawResponse(200, body), 42)
    assert decide(Operation.STATUS, err.value).retry_call


@pytest.mark.parametrize(("asked", "returned"), [(42, 42), (42, "42"), ("42", 42), ("SM1", "SM1")])
def test_a_status_answer_about_the_same_message_is_read(asked: object, returned: object) -> None:
    body = json.dumps({"message_id": returned, "status": "delivered"}).encode()
    status = parse_status_response(RawResponse(200, body), asked)  # type: ignore[arg-type]
    assert (status.message_id, status.status.value) == (asked, "delivered")


@pytest.mark.parametrize("body", [b'{"status": "sent"}', b'{"message_id": null, "status": "sent"}'])
def test_a_status_answer_without_message_id_is_about_the_message_asked_for(body: bytes) -> None:
    assert parse_status_response(RawResponse(200, body), 42).message_id == 42


def test_a_status_answer_about_another_message_is_retried_then_fails(serve: Callable[..., RawServer]) -> None:
    server = serve(answer(200, {"message_id": 43, "status": "failed"}))
    with pytest.raises(errors.OctopodsServerError, match="about message 43"):
        make_sync(settings_for(server.url), Operation.STATUS, 3)
    assert len(server.seen) == 3
