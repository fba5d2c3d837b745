"""Shared by the security tests: a raw HTTP server on 127.0.0.1 writing whatever bytes a test
wants, and both real clients built against it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import settings

from airflow_provider_octopods.api import build_send_request
from airflow_provider_octopods.api.decision import Operation
from airflow_provider_octopods.api.retry import RetryPolicy
from airflow_provider_octopods.api.settings import ClientSettings
from airflow_provider_octopods.clients.aio import AsyncOctopodsClient
from airflow_provider_octopods.clients.sync import OctopodsClient

# Property tests keep no example database in the repository and take the time they need.
settings.register_profile("octopods", database=None, deadline=None)
settings.load_profile("octopods")

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
    last one repeats). Records each request's line and headers. With ``reads_request=False`` it
    writes the reply as soon as a connection is accepted, reading nothing (a TLS peer that never
    finishes the handshake), and counts connections in ``accepted``."""

    replies: list[Reply]
    reads_request: bool = True
    seen: list[Seen] = field(default_factory=list)
    accepted: int = 0

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
        self.accepted += 1
        if not self.reads_request:
            with conn, contextlib.suppress(OSError):
                self.replies[min(self.accepted, len(self.replies)) - 1](conn, self.stop)
            return
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

    def start(*replies: Reply, reads_request: bool = True) -> RawServer:
        servers.append(RawServer(list(replies), reads_request=reads_request))
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
