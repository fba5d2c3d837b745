"""The async client's own HTTP/1.1 (``clients/http1.py``), byte by byte: framings, codings, interim
answers, broken answers, and when a connection is kept for the next request.

A raw server on 127.0.0.1 answers each request with the next scripted bytes; ``CLOSE`` after an
answer closes the connection. The client-level rules (what is retried, what is unknown) are in
``test_aio.py`` and ``tests/security``, which run over this same transport.
"""

from __future__ import annotations

import asyncio
import gzip
import tracemalloc
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from airflow_provider_octopods.api import build_send_request, errors
from airflow_provider_octopods.api.decision import Operation, decide
from airflow_provider_octopods.api.settings import ClientSettings
from airflow_provider_octopods.clients import http1
from airflow_provider_octopods.clients.aio import AsyncOctopodsClient
from airflow_provider_octopods.clients.http1 import BadAnswer, ConnectFailed, DeadlinePassed, Http1Pool, ReadTimeout

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


def pool_at(
    url: str, headers: dict[str, str] | None = None, *, read_timeout: float = 2.0, max_body: int = 1 << 20
) -> Http1Pool:
    return Http1Pool(
        url,
        {"X-Octopods-Auth": "k"} if headers is None else headers,
        ssl_context=None,
        connect_timeout=1,
        read_timeout=read_timeout,
        try_timeout=1 + read_timeout,
        max_body=max_body,
        limit=4,
    )


def with_pool(
    api: RawApi, use: Callable[[Http1Pool], Awaitable[Any]], *, read_timeout: float = 2.0, max_body: int = 1 << 20
) -> Any:
    async def main() -> Any:
        server = await asyncio.start_server(api.serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        pool = pool_at(f"http://127.0.0.1:{port}", read_timeout=read_timeout, max_body=max_body)
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
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: " + b"1" * 5000 + b"\r\n\r\n{}", id="length-of-5000-digits"),
        pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 2\r\n\r\n{}", id="te-not-chunked"),
        pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", id="te-gzip-chunked"),
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
        pool_at("http://127.0.0.1:9", {"X-Octopods-Auth": "k\r\nX-Evil: 1"})
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


def test_both_framings_at_once_are_read_by_the_chunks_and_the_connection_dropped() -> None:
    both = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
    api = RawApi(both)
    answers = with_pool(api, lambda pool: get(pool, 2))
    assert [body for _, _, body, _ in answers] == [b"{}", b"{}"]
    assert api.connections == 2


def test_raw_deflate_is_decoded_like_zlib_wrapped_deflate() -> None:
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    api = RawApi(reply(raw.compress(BODY) + raw.flush(), **{"Content-Encoding": "deflate"}))
    [(_, _, body, complete)] = with_pool(api, get)
    assert (body, complete) == (BODY, True)


def test_a_repeated_header_keeps_its_first_value() -> None:
    api = RawApi(b"HTTP/1.1 429 Too Many\r\nRetry-After: 5\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n")
    [(status, headers, _, _)] = with_pool(api, get)
    assert (status, headers["Retry-After"]) == (429, "5")


@pytest.mark.parametrize("status", ["204 No Content", "304 Not Modified"])
def test_answers_that_have_no_body_end_at_their_head(status: str) -> None:
    api = RawApi(f"HTTP/1.1 {status}\r\nContent-Length: 42\r\n\r\n".encode())
    answers = with_pool(api, lambda pool: get(pool, 2))
    assert [(body, complete) for _, _, body, complete in answers] == [(b"", True)] * 2
    assert api.connections == 1


def test_the_answer_to_head_has_no_body_whatever_its_length_says() -> None:
    api = RawApi(b"HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n")

    async def use(pool: Http1Pool) -> list[Any]:
        url = f"http://{pool.host}:{pool.port}/x"
        return [await pool.request("HEAD", url, None), await pool.request("HEAD", url, None)]

    answers = with_pool(api, use)
    assert [(status, body, complete) for status, _, body, complete in answers] == [(200, b"", True)] * 2
    assert api.connections == 1


def test_an_http_1_0_answer_without_keep_alive_ends_its_connection() -> None:
    api = RawApi(reply().replace(b"HTTP/1.1", b"HTTP/1.0"))
    with_pool(api, lambda pool: get(pool, 2))
    assert api.connections == 2
    kept = RawApi(reply(Connection="keep-alive").replace(b"HTTP/1.1", b"HTTP/1.0"))
    with_pool(kept, lambda pool: get(pool, 2))
    assert kept.connections == 1


def test_no_more_idle_connections_are_kept_than_the_limit() -> None:
    api = RawApi(reply())

    async def use(pool: Http1Pool) -> int:
        await asyncio.gather(*(get(pool) for _ in range(10)))
        return len(pool._idle)

    assert with_pool(api, use) == 4  # the limit with_pool sets
    assert api.connections == 10


def test_a_connection_idle_too_long_is_closed_not_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http1, "IDLE_SECONDS", 0.05)
    api = RawApi(reply())

    async def use(pool: Http1Pool) -> None:
        await get(pool)
        await asyncio.sleep(0.1)
        await get(pool)

    with_pool(api, use)
    assert api.connections == 2


class Watched(RawApi):
    """Notes when the client hangs up."""

    def __init__(self, *script: bytes) -> None:
        super().__init__(*script)
        self.hung_up: asyncio.Event | None = None

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.hung_up = self.hung_up or asyncio.Event()
        head = await reader.readuntil(b"\r\n\r\n")
        self.requests.append(head)
        writer.write(self.script[0])
        await reader.read()  # until the client closes
        self.hung_up.set()
        writer.close()


def test_a_request_cancelled_mid_answer_closes_its_connection() -> None:
    api = Watched(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")

    async def use(pool: Http1Pool) -> int:
        task = asyncio.ensure_future(get(pool))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert api.hung_up is not None
        await asyncio.wait_for(api.hung_up.wait(), 2)
        return len(pool._idle)

    assert with_pool(api, use) == 0


def test_a_request_cancelled_after_its_answer_came_closes_its_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cancelled in the loop turn between the answer's end and the task going on (a trigger
    cancelling its reads): the connection is closed, not left open and owned by nobody."""
    api = Watched(reply())
    finish = http1._Connection._finish
    tasks: list[asyncio.Task[Any]] = []

    def finish_then_cancel(self: http1._Connection, **kwargs: bool) -> None:
        finish(self, **kwargs)
        tasks[0].cancel()

    monkeypatch.setattr(http1._Connection, "_finish", finish_then_cancel)

    async def use(pool: Http1Pool) -> int:
        tasks.append(asyncio.ensure_future(get(pool)))
        with pytest.raises(asyncio.CancelledError):
            await tasks[0]
        assert api.hung_up is not None
        await asyncio.wait_for(api.hung_up.wait(), 2)
        return len(pool._idle)

    assert with_pool(api, use) == 0


def test_a_body_in_tiny_chunks_costs_no_more_memory_than_the_cap() -> None:
    cap = 256 * 1024
    answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"2\r\nab\r\n" * cap + b"0\r\n\r\n"

    class Piecewise(RawApi):
        """Writes the answer in 64 KiB views (the server shares the process: no copy of it is
        counted as the client's)."""

        async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            view = memoryview(answer)
            for start in range(0, len(view), 65536):
                writer.write(view[start : start + 65536])
                await writer.drain()
            await reader.read()
            writer.close()

    async def use(pool: Http1Pool) -> tuple[int, bool, int]:
        tracemalloc.start()
        try:
            [(_, _, body, complete)] = await get(pool)
            return len(body), complete, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    size, complete, peak = with_pool(Piecewise(b""), use, max_body=cap)
    assert (size, complete) == (cap, False)
    # Kept one piece a chunk, the 131,072 pieces took over 5 MiB; now the body and the reads' buffers.
    assert peak < 8 * cap


def test_host_names_are_sent_in_their_ascii_form() -> None:
    assert http1._host_header("bücher.example", None) == "xn--bcher-kva.example"
    assert http1._host_header("例え.jp", 8443) == "xn--r8jz45g.jp:8443"
    assert http1._host_header("::1", 8080) == "[::1]:8080"


def test_a_header_http_cannot_carry_is_refused_without_showing_it() -> None:
    with pytest.raises(ValueError, match="X-Octopods-Auth") as err:
        http1._field("X-Octopods-Auth", "ключ-secret")
    assert "secret" not in repr(err.value)


def test_a_host_name_that_cannot_be_looked_up_means_nothing_was_sent() -> None:
    async def use() -> None:
        pool = pool_at("https://api..octopods.io")
        await pool.request("GET", "https://api..octopods.io/x", None)

    with pytest.raises(ConnectFailed):
        asyncio.run(use())


def chunked(*pieces: bytes, **headers: str) -> bytes:
    fields = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    body = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)
    return f"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n{fields}\r\n".encode() + body + b"0\r\n\r\n"


@pytest.mark.parametrize("wbits", [zlib.MAX_WBITS, -zlib.MAX_WBITS], ids=["zlib", "raw"])
def test_deflate_is_told_apart_by_its_first_two_bytes_whatever_pieces_they_come_in(wbits: int) -> None:
    compressor = zlib.compressobj(wbits=wbits)
    stream = compressor.compress(BODY) + compressor.flush()
    api = RawApi(chunked(stream[:1], stream[1:2], stream[2:], **{"Content-Encoding": "deflate"}))
    [(_, _, body, complete)] = with_pool(api, get)
    assert (body, complete) == (BODY, True)


@pytest.mark.parametrize("framing", ["length", "close"])
def test_a_compressed_body_cut_short_is_a_bad_answer(framing: str) -> None:
    cut = gzip.compress(BODY)[:-8]  # without the gzip trailer
    answer = reply(cut, **{"Content-Encoding": "gzip"})
    if framing == "close":
        answer = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n" + cut + CLOSE
    with pytest.raises(BadAnswer, match="cut short"):
        with_pool(RawApi(answer), get)


def test_a_connection_is_dropped_before_the_idle_time_the_server_announces() -> None:
    api = RawApi(reply(**{"Keep-Alive": "timeout=1, max=100"}))

    async def use(pool: Http1Pool) -> None:
        await get(pool)  # the server drops it after 1 s: kept at most 0 s
        await asyncio.sleep(0.01)
        await get(pool)

    with_pool(api, use)
    assert api.connections == 2


@pytest.mark.parametrize(
    ("name", "value"),
    [("X Bad", "v"), ("", "v"), ("X-Ok", "a\x01b"), ("X-Ok", "a\x7fb"), ("X-Ok", "a\nb")],
)
def test_header_names_must_be_tokens_and_values_free_of_control_characters(name: str, value: str) -> None:
    with pytest.raises(ValueError, match="cannot be sent"):
        http1._field(name, value)


def test_a_base_url_whose_host_name_cannot_be_written_in_ascii_means_nothing_was_sent() -> None:
    settings = ClientSettings(base_url="http://bü..example", api_key="k")

    async def main() -> errors.OctopodsError:
        async def no_wait(_: float) -> None:
            pass

        async with AsyncOctopodsClient(settings, sleep=no_wait) as client:
            with pytest.raises(errors.OctopodsError) as err:
                await client.send(build_send_request("+15551234567", "Hi"))
            return err.value

    error = asyncio.run(main())
    assert not decide(Operation.SEND, error).maybe_sent
    assert "nothing was sent" in str(error)
