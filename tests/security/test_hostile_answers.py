"""Hostile answers: too large (gzip bombs included), too slow, nested too deep, or lying about the
message id. Each ends in the provider's own error, with the retry rules of ``api.decision``.

The answers come from a small threaded server on 127.0.0.1 that writes raw bytes, so both real
clients (requests and aiohttp) read them through their full HTTP stacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import socket
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pytest

from airflow_provider_octopods.api import build_send_request, errors, protocol
from airflow_provider_octopods.api.decision import Operation, decide
from airflow_provider_octopods.api.protocol import (
    MAX_ANSWER_BYTES,
    RawResponse,
    error_from_response,
    parse_send_response,
    parse_status_response,
)
from airflow_provider_octopods.api.retry import RetryPolicy
from airflow_provider_octopods.api.settings import ClientSettings
from airflow_provider_octopods.clients import aio
from airflow_provider_octopods.clients.aio import AsyncOctopodsClient
from airflow_provider_octopods.clients.sync import OctopodsClient

KEY = "hostile-Key-Secret-51"
REQUEST = build_send_request("+15551234567", "Hello")
SENT = {"request_id": "r", "message_id": 42, "phone_number": "+15551234567"}
DELIVERED = {"message_id": 42, "status": "delivered"}

# A server's answer to one request: a function that writes it to the connection.
Reply = Callable[[socket.socket, threading.Event], None]


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


def answer(status: int, body: bytes | dict[str, Any] = b"", **headers: str) -> Reply:
    """A complete answer, written at once."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    fields = {"Content-Length": str(len(data)), "Connection": "close", **headers}
    head = f"HTTP/1.1 {status} Hostile\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n"

    def reply(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(head.encode() + data)

    return reply


def trickle(prefix: bytes, *, every: float, seconds: float) -> Reply:
    """``prefix`` at once, then one byte every ``every`` seconds for ``seconds``."""

    def reply(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(prefix)
        ends = time.monotonic() + seconds
        while time.monotonic() < ends and not stop.wait(every):
            conn.sendall(b"a")

    return reply


@dataclass
class RawServer:
    """HTTP/1.1 on 127.0.0.1, one connection per request; request ``n`` gets ``replies[n]`` (the
    last one repeats). Records each request's line and headers."""

    replies: list[Reply]
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.stop = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            request_line, *lines = head.decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
            while len(body) < int(headers.get("content-length", 0)):
                body += conn.recv(65536)
            method, path, _ = request_line.split(" ", 2)
            self.seen.append(Seen(method, path, headers))
            reply = self.replies[min(len(self.seen), len(self.replies)) - 1]
            with contextlib.suppress(OSError):  # the client hung up, as it should once it has read enough
                reply(conn, self.stop)

    def close(self) -> None:
        self.stop.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread up
        self.sock.close()


@pytest.fixture
def serve() -> Iterator[Callable[..., RawServer]]:
    servers: list[RawServer] = []

    def start(*replies: Reply) -> RawServer:
        servers.append(RawServer(list(replies)))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def settings_for(url: str, *, connect_timeout: float = 1.0, read_timeout: float = 2.0) -> ClientSettings:
    return ClientSettings(base_url=url, api_key=KEY, connect_timeout=connect_timeout, read_timeout=read_timeout)


def make_sync(settings: ClientSettings, operation: Operation, attempts: int) -> object:
    client = OctopodsClient(settings, retry_policy=RetryPolicy(max_attempts=attempts), sleep=lambda _: None)
    try:
        return client.send(REQUEST) if operation is Operation.SEND else client.get_status(42)
    finally:
        client.close()


def make_async(settings: ClientSettings, operation: Operation, attempts: int) -> object:
    async def no_wait(_: float) -> None:
        pass

    async def main() -> object:
        policy = RetryPolicy(max_attempts=attempts)
        async with AsyncOctopodsClient(settings, retry_policy=policy, sleep=no_wait) as client:
            return await (client.send(REQUEST) if operation is Operation.SEND else client.get_status(42))

    return asyncio.run(main())


Make = Callable[[ClientSettings, Operation, int], object]
BOTH_CLIENTS = pytest.mark.parametrize("make", [make_sync, make_async], ids=["sync", "async"])


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
