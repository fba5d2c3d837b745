"""The async client's own HTTP/1.1 (``clients/http1.py``), byte by byte: framings, codings, interim
answers, broken answers, and when a connection is kept for the next request.

A raw server on 127.0.0.1 answers each request with the next scripted bytes; ``CLOSE`` after an
answer closes the connection. The client-level rules (what is retried, what is unknown) are in
``test_aio.py`` and ``tests/security``, which run over this same transport.
"""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from airflow_provider_octopods.api import build_send_request, errors
from airflow_provider_octopods.api.decision import Operation, decide
from airflow_provider_octopods.api.settings import ClientSettings
from airflow_provider_octopods.clients.aio import AsyncOctopodsClient
from airflow_provider_octopods.clients.http1 import BadAnswer, DeadlinePassed, Http1Pool, ReadTimeout

CLOSE = b"<close>"
BODY = b'{"message_id": 42, "status": "delivered"}'


def reply(body: bytes = BODY, *, status: str = "200 OK", **headers: str) -> bytes:
    fields = {"Content-Length": str(len(body)), **headers}
    return (
        f"HTTP/1.1 {status}\r\n".encode()
        + "".join(f"{k}: {v}\r\n" for k, v in fields.items()).encode()
        + b"\r\n"
        + body
    )


class RawApi:
    """Each request (on any connection) gets the next script entry; counts connections."""

    def __init__(self, *script: bytes) -> None:
        self.script = list(script)
        self.connections = 0
        self.requests: list[bytes] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    ),
                    0,
                )
                self.requests.append(head + await reader.readexactly(length))
                step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
                writer.write(step.replace(CLOSE, b""))
                await writer.drain()
                if step.endswith(CLOSE):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def with_pool(
    api: RawApi, use: Callable[[Http1Pool], Awaitable[Any]], *, read_timeout: float = 2.0, max_body: int = 1 << 20
) -> Any:
    async def main() -> Any:
        server = await asyncio.start_server(api.serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        pool = Http1Pool(
            f"http://127.0.0.1:{port}",
            {"X-Octopods-Auth": "k"},
            ssl_context=None,
            connect_timeout=1,
            read_timeout=read_timeout,
            try_timeout=1 + read_timeout,
            max_body=max_body,
            limit=4,
        )
        try:
            return await use(pool)
        finally:
            pool.close()
            server.close()

    return asyncio.run(main())


def get(pool: Http1Pool, times: int = 1) -> Awaitable[list[tuple[int, dict[str, str], bytes, bool]]]:
    async def run() -> list[tuple[int, dict[str, str], bytes, bool]]:
        return [
            await pool.request("GET", f"http://{pool.host}:{pool.port}/api/v1/sms/messages/42", None)
            for _ in range(times)
        ]

    return run()


def test_answers_framed_by_length_reuse_one_connection() -> None:
    api = RawApi(reply())
    answers = with_pool(api, lambda pool: get(pool, 3))
    assert [(status, body, complete) for status, _, body, complete in answers] == [(200, BODY, True)] * 3
    assert api.connections == 1
    assert api.requests[0].startswith(b"GET /api/v1/sms/messages/42 HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"X-Octopods-Auth: k\r\n" in api.requests[0]


def test_a_chunked_answer_with_extensions_and_trailers_is_read_whole_and_the_connection_kept() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"5;ext=1\r\n"
        + BODY[:5]
        + b"\r\n"
        + f"{len(BODY) - 5:x}\r\n".encode()
        + BODY[5:]
        + b"\r\n0\r\nX-Trailer: yes\r\n\r\n"
    )
    api = RawApi(chunked)
    answers = with_pool(api, lambda pool: get(pool, 2))
    assert [body for _, _, body, _ in answers] == [BODY, BODY]
    assert api.connections == 1


def test_an_answer_without_length_ends_with_the_connection() -> None:
    api = RawApi(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + BODY + CLOSE)
    answers = with_pool(api, lambda pool: get(pool, 2))
    assert [(body, complete) for _, _, body, complete in answers] == [(BODY, True)] * 2
    assert api.connections == 2


def test_connection_close_is_honoured_and_interim_answers_skipped() -> None:
    api = RawApi(b"HTTP/1.1 100 Continue\r\n\r\n" + reply(Connection="close"))
    answers = with_pool(api, lambda pool: get(pool, 2))
    assert [status for status, _, _, _ in answers] == [200, 200]
    assert api.connections == 2


@pytest.mark.parametrize(
    ("coding", "encode"),
    [("gzip", gzip.compress), ("deflate", zlib.compress)],
)
def test_compressed_answers_are_decoded(coding: str, encode: Callable[[bytes], bytes]) -> None:
    api = RawApi(reply(encode(BODY), **{"Content-Encoding": coding}))
    [(_, headers, body, complete)] = with_pool(api, get)
    assert (body, complete) == (BODY, True)
    assert headers["Content-Encoding"] == coding


def test_a_body_over_the_cap_stops_reading_and_drops_the_connection() -> None:
    api = RawApi(reply(b"x" * 5000))
    answers = with_pool(api, lambda pool: get(pool, 2), max_body=1000)
    assert [(len(body), complete) for _, _, body, complete in answers] == [(1000, False)] * 2
    assert api.connections == 2


def test_bytes_past_the_answer_mean_the_connection_is_not_reused() -> None:
    api = RawApi(reply() + b"HTTP/1.1 200 OK\r\n")
    with_pool(api, lambda pool: get(pool, 2))
    assert api.connections == 2


def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    api = RawApi(reply() + CLOSE)

    async def use(pool: Http1Pool) -> list[Any]:
        first = await get(pool)
        await asyncio.sleep(0.05)  # the close reaches the client
        return first + await get(pool)

    answers = with_pool(api, use)
    assert [status for status, _, _, _ in answers] == [200, 200]
    assert api.connections == 2


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param(b"HTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n", id="not-http1"),
        pytest.param(b"HTTP/1.1 OK\r\nContent-Length: 0\r\n\r\n", id="no-status"),
        pytest.param(b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", id="bad-header"),
        pytest.param(b"HTTP/1.1 200 OK\r\n folded: x\r\n\r\n", id="folded-header"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc", id="two-lengths"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", id="negative-length"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 1\r\n\r\nx", id="brotli"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc", id="bad-gzip"),
        pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", id="bad-chunk-size"),
        pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n", id="chunk-overrun"),
        pytest.param(b"HTTP/1.1 200 OK\r\n" + b"X-Big: " + b"a" * 70_000 + b"\r\n\r\n", id="head-over-64k"),
    ],
)
def test_a_broken_answer_is_a_bad_answer(broken: bytes) -> None:
    with pytest.raises(BadAnswer):
        with_pool(RawApi(broken), get)


def test_an_answer_cut_short_is_a_reset_not_an_answer() -> None:
    with pytest.raises(ConnectionResetError):
        with_pool(RawApi(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc" + CLOSE), get)


def test_silence_after_the_request_is_a_read_timeout() -> None:
    with pytest.raises(ReadTimeout):
        with_pool(RawApi(b""), get, read_timeout=0.2)


def test_a_header_that_would_split_the_request_is_refused_before_connecting() -> None:
    with pytest.raises(ValueError, match="line break") as err:
        Http1Pool(
            "http://127.0.0.1:9",
            {"X-Octopods-Auth": "k\r\nX-Evil: 1"},
            ssl_context=None,
            connect_timeout=1,
            read_timeout=1,
            try_timeout=2,
            max_body=10,
            limit=1,
        )
    assert "X-Evil" not in str(err.value)


def test_through_the_client_a_bad_send_answer_is_unknown_and_a_bad_status_answer_retried() -> None:
    async def main(api: RawApi, operation: Operation) -> errors.OctopodsError:
        server = await asyncio.start_server(api.serve, "127.0.0.1", 0)
        settings = ClientSettings(base_url=f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", api_key="k")

        async def no_wait(_: float) -> None:
            pass

        try:
            async with AsyncOctopodsClient(settings, sleep=no_wait) as client:
                call = (
                    client.send(build_send_request("+15551234567", "Hi"))
                    if operation is Operation.SEND
                    else client.get_status(42)
                )
                with pytest.raises(errors.OctopodsError) as err:
                    await call
                return err.value
        finally:
            server.close()

    broken = b"HTTP/1.1 2x0 OK\r\n\r\n"
    send_api, status_api = RawApi(broken), RawApi(broken)
    sent = asyncio.run(main(send_api, Operation.SEND))
    assert decide(Operation.SEND, sent).maybe_sent
    assert len(send_api.requests) == 1
    read = asyncio.run(main(status_api, Operation.STATUS))
    assert decide(Operation.STATUS, read).retry_call
    assert len(status_api.requests) == 4


def test_silence_after_some_bytes_is_a_read_timeout_counted_from_the_last_byte() -> None:
    """Bytes moved the read timer on: the timeout comes ``read_timeout`` after the last of them."""

    async def use(pool: Http1Pool) -> float:
        started = asyncio.get_running_loop().time()
        with pytest.raises(ReadTimeout):
            await get(pool)
        return asyncio.get_running_loop().time() - started

    class SlowStart(RawApi):
        async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            await asyncio.sleep(0.2)
            writer.write(b"HTTP/1.1 200 OK\r\n")  # then nothing
            await asyncio.sleep(5)

    took = with_pool(SlowStart(b""), use, read_timeout=0.3)
    assert 0.45 <= took < 1.2


def test_an_answer_still_coming_at_the_deadline_is_cut_there() -> None:
    class Trickle(RawApi):
        async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
            for _ in range(100):
                await asyncio.sleep(0.05)
                writer.write(b"a")

    async def use(pool: Http1Pool) -> float:
        started = asyncio.get_running_loop().time()
        with pytest.raises(DeadlinePassed):
            await get(pool)
        return asyncio.get_running_loop().time() - started

    took = with_pool(Trickle(b""), use, read_timeout=0.3)  # try_timeout 1.3 s
    assert 1.25 <= took < 2.5


def test_urls_of_the_origin_written_otherwise_are_sent_and_other_origins_refused() -> None:
    api = RawApi(reply())

    async def use(pool: Http1Pool) -> list[Any]:
        same = await pool.request("GET", f"HTTP://127.0.0.1:{pool.port}/api/v1/sms/messages/7?x=1", None)
        with pytest.raises(ValueError, match="origin"):
            await pool.request("GET", f"http://127.0.0.1:{pool.port + 1}/api", None)
        with pytest.raises(ValueError, match="origin"):
            await pool.request("GET", f"http://127.0.0.1:{pool.port}@evil.example/api", None)
        return [same]

    [(status, _, _, _)] = with_pool(api, use)
    assert status == 200
    assert api.requests[0].startswith(b"GET /api/v1/sms/messages/7?x=1 HTTP/1.1\r\n")
    assert len(api.requests) == 1
