"""The async client follows exactly the sync client's retry rules, over real HTTP on 127.0.0.1.

A scripted server answers each request with the next step (the last one repeats): an answer, or a
fault at the TCP level (no answer, a reset, a hang). Faults while connecting use a socket that is
bound but not listening yet (refused) or a TLS port that never completes the handshake.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import socket
import ssl
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey

from airflow_provider_octopods.api import build_send_request, errors
from airflow_provider_octopods.api.decision import Operation, decide
from airflow_provider_octopods.api.pacing import Booking, RateLimiter
from airflow_provider_octopods.api.retry import RetryPolicy
from airflow_provider_octopods.api.settings import ClientSettings
from airflow_provider_octopods.api.transport import failure_from_exception
from airflow_provider_octopods.clients import aio
from airflow_provider_octopods.clients.aio import MAX_ANSWER_BYTES, AsyncOctopodsClient

KEY = "async-Key-Secret-88"
REQUEST = build_send_request("+15551234567", "Hello")
READ_TIMEOUT = 0.2


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering

    @classmethod
    def json(cls, status: int, payload: object, **headers: str) -> Answer:
        return cls(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **headers})


SENT = Answer.json(201, {"request_id": "r", "message_id": 42, "phone_number": "+15551234567"})
DELIVERED = Answer.json(200, {"message_id": 42, "status": "delivered"})
# Faults after the request was read: no answer and the connection closed, a TCP reset, or silence.
CLOSE, RESET, HANG = "close", "reset", "hang"

Step = Answer | str


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    connection: int = 0  # which connection, counted from 1 in the order they were accepted


class ScriptedApi:
    """HTTP/1.1 on 127.0.0.1 (keep-alive), one scripted step per request."""

    def __init__(self, *steps: Step, listening: bool = True) -> None:
        self.steps = steps
        self.seen: list[Seen] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))  # bound: connecting is refused until listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.listening = listening
        self.server: asyncio.Server | None = None
        self.stop = asyncio.Event()
        self.connections: set[asyncio.StreamWriter] = set()
        self.accepted = 0

    async def __aenter__(self) -> ScriptedApi:
        if self.listening:
            await self.listen()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        if self.server is not None:
            self.server.close()
        self.sock.close()
        for writer in list(self.connections):
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def listen(self) -> None:
        self.sock.listen()
        self.server = await asyncio.start_server(self._serve, sock=self.sock)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections.add(writer)
        self.accepted += 1
        try:
            await self._answer(reader, writer, self.accepted)
        except ConnectionError:
            pass  # the client hung up (e.g. after reading as much of an answer as it wanted)
        finally:
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, connection: int) -> None:
        """Answer the connection's requests one after the other, each with the next step."""
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return
            request_line, *lines = head.decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines if h)}
            body = await reader.readexactly(int(headers.get("content-length", 0)))
            method, path, _ = request_line.split(" ", 2)
            self.seen.append(Seen(method, path, headers, body, connection))
            step = self.steps[min(len(self.seen), len(self.steps)) - 1]
            if step == HANG:
                await self.stop.wait()
                return
            if step == RESET:
                writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            if step == CLOSE:
                return
            assert isinstance(step, Answer)
            await asyncio.sleep(step.delay)
            fields = {"Content-Length": str(len(step.body)), **step.headers}
            writer.write(
                f"HTTP/1.1 {step.status} Scripted\r\n".encode()
                + "".join(f"{k}: {v}\r\n" for k, v in fields.items()).encode()
                + b"\r\n"
                + step.body
            )
            await writer.drain()


Call = Callable[[AsyncOctopodsClient], Awaitable[Any]]
Hook = Callable[[ScriptedApi, AsyncOctopodsClient], Awaitable[None]]


class Clock:
    """A fake monotonic clock for rate limiters; the recorded sleeps move it forward."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run(
    call: Call,
    *steps: Step,
    listening: bool = True,
    limiter: RateLimiter | None = None,
    clock: Clock | None = None,
    between: Hook | None = None,
) -> tuple[Any, list[Seen], list[float]]:
    """Make ``call`` against a scripted API; sleeps are recorded, not slept.

    ``between`` runs once, when the first sleep begins (before ``clock`` moves on by its delay).
    """
    sleeps: list[float] = []

    async def main() -> tuple[Any, list[Seen]]:
        async with ScriptedApi(*steps, listening=listening) as api:

            async def record(delay: float) -> None:
                nonlocal between
                sleeps.append(delay)
                if between is not None:
                    hook, between = between, None
                    await hook(api, client)
                if clock is not None:
                    clock.now += delay

            settings = ClientSettings(base_url=api.url, api_key=KEY, connect_timeout=1, read_timeout=READ_TIMEOUT)
            async with AsyncOctopodsClient(
                settings,
                retry_policy=RetryPolicy(max_attempts=4, backoff=0.1, max_backoff=2.0),
                sleep=record,
                rate_limiter=limiter,
            ) as client:
                try:
                    return await call(client), api.seen
                except errors.OctopodsError as err:
                    return err, api.seen

    result, seen = asyncio.run(main())
    return result, seen, sleeps


def test_send_request_is_the_documented_one() -> None:
    result, seen, _ = run(lambda c: c.send(REQUEST), SENT)
    assert result.message_id == 42
    [request] = seen
    assert request.method == "POST"
    assert request.path == "/api/v1/sms/messages"
    assert request.headers["x-octopods-auth"] == KEY
    assert request.headers["user-agent"].startswith("airflow-provider-octopods/")
    assert json.loads(request.body) == {"destination_phone": "+15551234567", "body": "Hello"}


@pytest.mark.parametrize("failure", [HANG, CLOSE, RESET], ids=["read-timeout", "disconnected", "reset"])
def test_send_with_unknown_outcome_is_not_retried(failure: str) -> None:
    error, seen, sleeps = run(lambda c: c.send(REQUEST), failure, SENT)
    assert isinstance(error, errors.OctopodsUnknownOutcomeError)
    assert len(seen) == 1
    assert sleeps == []
    assert KEY not in str(error)
    if failure == HANG:
        assert "read timeout" in str(error)


async def start_listening(api: ScriptedApi, client: AsyncOctopodsClient) -> None:
    await api.listen()


def test_send_retried_when_the_connection_was_refused() -> None:
    result, seen, sleeps = run(lambda c: c.send(REQUEST), SENT, listening=False, between=start_listening)
    assert result.message_id == 42
    assert len(seen) == 1  # the refused try never reached the server
    assert len(sleeps) == 1


@pytest.mark.parametrize(
    "first", [Answer(503, b"busy"), Answer(429, headers={"Retry-After": "1.25"})], ids=["503", "429"]
)
def test_send_retried_when_nothing_was_sent(first: Answer) -> None:
    result, seen, sleeps = run(lambda c: c.send(REQUEST), first, SENT)
    assert result.message_id == 42
    assert len(seen) == 2
    if first.status == 429:
        assert sleeps == [1.25]


def test_connect_timeout_during_the_tls_handshake_is_not_sent_and_retried() -> None:
    attempts: list[asyncio.StreamWriter] = []

    async def main() -> errors.OctopodsError:
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            attempts.append(writer)
            await reader.read()  # never answers the TLS ClientHello

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        settings = ClientSettings(base_url=f"https://127.0.0.1:{port}", api_key=KEY, connect_timeout=0.2)

        async def no_wait(delay: float) -> None:
            pass

        try:
            async with AsyncOctopodsClient(settings, retry_policy=RetryPolicy(max_attempts=2), sleep=no_wait) as c:
                with pytest.raises(errors.OctopodsTransportError) as err:
                    await c.send(REQUEST)
                return err.value
        finally:
            server.close()
            for writer in attempts:
                writer.close()
                await writer.wait_closed()

    error = asyncio.run(main())
    assert not isinstance(error, errors.OctopodsTLSError)
    assert "nothing was sent" in str(error)
    assert "connect timeout" in str(error)
    assert len(attempts) == 2  # retried: the request never left this machine


def test_send_5xx_not_retried() -> None:
    error, seen, _ = run(lambda c: c.send(REQUEST), Answer(502, b"<html>Bad Gateway</html>"), SENT)
    assert isinstance(error, errors.OctopodsServerError)
    assert "HTTP 502" in str(error)
    assert len(seen) == 1


def test_retry_after_http_date_is_honoured() -> None:
    _, _, sleeps = run(
        lambda c: c.send(REQUEST), Answer(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}), SENT
    )
    assert sleeps == [0.0]  # a date in the past: retry at once


def test_redirects_are_not_followed() -> None:
    error, seen, _ = run(lambda c: c.get_status(42), Answer(302, headers={"Location": "/elsewhere"}), DELIVERED)
    assert isinstance(error, errors.OctopodsAPIError)
    assert "HTTP 302" in str(error)
    assert len(seen) == 1


@pytest.mark.parametrize(
    "failure",
    [HANG, CLOSE, RESET, Answer(500), Answer(429)],
    ids=["read-timeout", "disconnected", "reset", "500", "429"],
)
def test_status_reads_retried(failure: Step) -> None:
    result, seen, sleeps = run(lambda c: c.get_status(42), failure, failure, DELIVERED)
    assert result.status.value == "delivered"
    assert len(seen) == 3
    assert len(sleeps) == 2  # each failed request was one of the policy's tries: aiohttp repeated none


# aiohttp re-sends an idempotent request once when its kept-alive connection turns out closed;
# the client lets no request out twice: every request the server sees is one the retry policy made.


async def two_reads(client: AsyncOctopodsClient) -> list[Any]:
    return [await client.get_status(42), await client.get_status(42)]


async def two_sends(client: AsyncOctopodsClient) -> list[Any]:
    return [await client.send(REQUEST), await client.send(REQUEST)]


def test_a_status_read_on_a_kept_alive_connection_found_closed_is_made_again_only_by_the_policy() -> None:
    # The server answers a read, keeps the connection, reads the next one and closes silently.
    result, seen, sleeps = run(two_reads, DELIVERED, CLOSE, DELIVERED)
    assert [status.status.value for status in result] == ["delivered", "delivered"]
    assert [request.method for request in seen] == ["GET", "GET", "GET"]
    assert seen[0].connection == seen[1].connection  # the second read went on the kept-alive connection
    assert seen[2].connection != seen[1].connection
    assert len(sleeps) == 1  # the third request is the policy's retry, after its backoff


def test_a_status_read_found_closed_with_no_retry_left_is_sent_once() -> None:
    async def main() -> tuple[errors.OctopodsError, list[Seen]]:
        async with ScriptedApi(DELIVERED, CLOSE, DELIVERED) as api:
            settings = ClientSettings(base_url=api.url, api_key=KEY, connect_timeout=1, read_timeout=READ_TIMEOUT)
            async with AsyncOctopodsClient(settings, retry_policy=RetryPolicy(max_attempts=1)) as client:
                await client.get_status(42)
                with pytest.raises(errors.OctopodsServerError, match="no answer") as err:
                    await client.get_status(42)
                return err.value, api.seen

    error, seen = asyncio.run(main())
    assert "ServerDisconnected" in str(error)
    assert len(seen) == 2  # aiohttp alone would have written the second read again


def test_a_send_on_a_kept_alive_connection_found_closed_is_an_unknown_outcome_sent_once() -> None:
    error, seen, sleeps = run(two_sends, SENT, CLOSE, SENT)
    assert isinstance(error, errors.OctopodsUnknownOutcomeError)
    assert (len(seen), sleeps) == (2, [])
    assert seen[0].connection == seen[1].connection


def test_bare_aiohttp_does_repeat_the_read_the_client_makes_once() -> None:
    """Why the client needs its one-attempt middleware: the same server, through a bare session."""

    async def main() -> list[Seen]:
        async with ScriptedApi(DELIVERED, CLOSE, DELIVERED) as api, aiohttp.ClientSession() as session:
            for _ in range(2):
                async with session.get(f"{api.url}/api/v1/sms/messages/42") as answer:
                    await answer.read()
            return api.seen

    assert len(asyncio.run(main())) == 3  # the second read was written twice, by aiohttp itself


def test_rate_limit_exhausted() -> None:
    error, seen, sleeps = run(lambda c: c.get_status(42), Answer(429, headers={"Retry-After": "3"}))
    assert isinstance(error, errors.OctopodsRateLimitError)
    assert len(seen) == 4
    assert sleeps == [2.0, 2.0, 2.0]  # capped at max_backoff


def test_error_codes_mapped_like_the_sync_client() -> None:
    error, _, _ = run(lambda c: c.get_status(42), Answer.json(400, {"error_code": 1, "error": "Message not found."}))
    assert isinstance(error, errors.OctopodsNotFoundError)
    error, _, _ = run(lambda c: c.send(REQUEST), Answer.json(400, {"error_code": 5, "error": "rotated"}))
    assert isinstance(error, errors.OctopodsDeprecatedKeyError)


def test_time_queued_for_a_connection_does_not_count_against_the_timeouts() -> None:
    async def main() -> list[Any]:
        async with ScriptedApi(Answer(DELIVERED.status, DELIVERED.body, delay=0.1)) as api:
            # Each try may take 0.05 s to connect and 0.15 s in all; the fourth read waits
            # 0.3 s for the one connection.
            settings = ClientSettings(base_url=api.url, api_key=KEY, connect_timeout=0.05, read_timeout=0.15)
            policy = RetryPolicy(max_attempts=1)
            async with AsyncOctopodsClient(settings, retry_policy=policy, max_connections=1) as client:
                return await asyncio.gather(*(client.get_status(42) for _ in range(4)))

    assert [status.status.value for status in asyncio.run(main())] == ["delivered"] * 4


# Answers too large to read


def huge_json(size: int) -> bytes:
    return json.dumps({"message_id": 42, "status": "delivered", "padding": "x" * size}).encode()


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
def test_an_oversize_send_answer_is_an_unknown_outcome(gzipped: bool) -> None:
    body = huge_json(3 * MAX_ANSWER_BYTES)
    answer = Answer(201, gzip.compress(body), {"Content-Encoding": "gzip"}) if gzipped else Answer(201, body)
    if gzipped:
        assert len(answer.body) < MAX_ANSWER_BYTES  # too large only once decompressed
    error, seen, sleeps = run(lambda c: c.send(REQUEST), answer, SENT)
    assert isinstance(error, errors.OctopodsUnknownOutcomeError)
    assert "over 1024 KiB" in str(error)
    assert (len(seen), sleeps) == (1, [])


def test_an_oversize_status_answer_is_retried() -> None:
    result, seen, _ = run(lambda c: c.get_status(42), Answer(200, huge_json(2 * MAX_ANSWER_BYTES)), DELIVERED)
    assert result.status.value == "delivered"
    assert len(seen) == 2


def test_an_oversize_error_answer_keeps_its_status() -> None:
    error, _, _ = run(lambda c: c.send(REQUEST), Answer(400, b"<html>" + b"x" * (2 * MAX_ANSWER_BYTES)))
    assert isinstance(error, errors.OctopodsAPIError)
    assert "HTTP 400" in str(error)


def test_an_answer_of_exactly_the_cap_is_read() -> None:
    payload = json.dumps({"message_id": 42, "status": "delivered", "padding": ""}).encode()
    body = payload[:-2] + b" " * (MAX_ANSWER_BYTES - len(payload)) + payload[-2:]
    assert len(body) == MAX_ANSWER_BYTES
    result, _, _ = run(lambda c: c.get_status(42), Answer(200, body))
    assert result.status.value == "delivered"


# Which aiohttp errors mean "nothing was sent"


KEY_OF_CONNECTION = ConnectionKey("app.octopods.io", 443, True, True, None, None, None)
REFUSED = ConnectionRefusedError(111, "Connection refused")
NOT_SENT = [
    aiohttp.ClientConnectorError(KEY_OF_CONNECTION, REFUSED),
    aiohttp.ClientConnectorDNSError(KEY_OF_CONNECTION, OSError(-2, "Name or service not known")),
    aiohttp.ClientProxyConnectionError(KEY_OF_CONNECTION, REFUSED),
    aiohttp.ClientConnectorSSLError(KEY_OF_CONNECTION, OSError(1, "alert internal error")),
    aiohttp.ConnectionTimeoutError("Connection timeout to host https://app.octopods.io"),
    aiohttp.InvalidURL("https://:443/api"),
]
MAYBE_SENT = [
    aiohttp.SocketTimeoutError("Timeout on reading data from socket"),
    aiohttp.ServerTimeoutError("timeout"),
    asyncio.TimeoutError(),
    aiohttp.ServerDisconnectedError(),
    aiohttp.ClientOSError(104, "Connection reset by peer"),
    aiohttp.ClientPayloadError("Response payload is not completed"),
]


@pytest.mark.parametrize("exc", NOT_SENT, ids=lambda e: type(e).__name__)
def test_connector_errors_mean_nothing_was_sent(exc: BaseException) -> None:
    assert aio._while_connecting(exc)
    error = failure_from_exception(Operation.SEND, exc, host="app.octopods.io", connecting=aio._while_connecting(exc))
    assert isinstance(error, errors.OctopodsTransportError)
    assert decide(Operation.SEND, error).retry_call
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        assert "connect timeout" in str(error)


@pytest.mark.parametrize("exc", MAYBE_SENT, ids=lambda e: type(e).__name__)
def test_errors_after_connecting_mean_the_send_may_be_out(exc: BaseException) -> None:
    assert not aio._while_connecting(exc)
    error = failure_from_exception(Operation.SEND, exc, host="app.octopods.io", connecting=False)
    assert isinstance(error, errors.OctopodsUnknownOutcomeError)
    assert decide(Operation.SEND, error).maybe_sent
    assert decide(
        Operation.STATUS, failure_from_exception(Operation.STATUS, exc, host="h", connecting=False)
    ).retry_call


def test_a_wrapped_ssl_error_is_a_tls_error_naming_the_reason() -> None:
    context = ssl.create_default_context()
    with socket.create_server(("127.0.0.1", 0)) as server, socket.create_connection(server.getsockname()) as raw:
        # A handshake with a peer that is not TLS: ssl raises, as it would inside aiohttp.
        accepted, _ = server.accept()
        accepted.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        with pytest.raises(ssl.SSLError) as raised:
            context.wrap_socket(raw, server_hostname="127.0.0.1")
        accepted.close()
    wrapped = aiohttp.ClientConnectorSSLError(KEY_OF_CONNECTION, raised.value)
    error = failure_from_exception(Operation.SEND, wrapped, host="127.0.0.1", connecting=True)
    assert isinstance(error, errors.OctopodsTLSError)
    assert "WRONG_VERSION_NUMBER" in str(error) or "wrong version number" in str(error)


# Environment: proxies and trusted roots, as httpx read them

PROXY_VARIABLES = (
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
)


def test_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert aio._proxy_from_environment("https://app.octopods.io") is None
    monkeypatch.setenv("HTTPS_PROXY", "proxy.corp:3128")
    assert aio._proxy_from_environment("https://app.octopods.io") == "http://proxy.corp:3128"
    assert aio._proxy_from_environment("http://127.0.0.1:8080") is None
    monkeypatch.setenv("NO_PROXY", "octopods.io")
    assert aio._proxy_from_environment("https://app.octopods.io") is None


@pytest.mark.parametrize("bypassed", [False, True], ids=["proxied", "no_proxy"])
def test_calls_go_through_the_environments_proxy_on_the_same_session(
    monkeypatch: pytest.MonkeyPatch, bypassed: bool
) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)

    async def main() -> tuple[list[Seen], list[Seen]]:
        async with ScriptedApi(DELIVERED) as proxy, ScriptedApi(DELIVERED) as api:
            monkeypatch.setenv("HTTP_PROXY", proxy.url)
            if bypassed:
                monkeypatch.setenv("NO_PROXY", "127.0.0.1")
            settings = ClientSettings(base_url=api.url, api_key=KEY, connect_timeout=1, read_timeout=1)
            async with AsyncOctopodsClient(settings) as client:
                await client.get_status(42)
                await client.get_status(42)
            return proxy.seen, api.seen

    through_proxy, direct = asyncio.run(main())
    seen = direct if bypassed else through_proxy
    assert [request.method for request in seen] == ["GET", "GET"]
    assert {request.connection for request in seen} == {1}  # one kept-alive connection
    assert seen[0].path == ("" if bypassed else api_url_of(seen[0])) + "/api/v1/sms/messages/42"
    assert seen[0].headers["x-octopods-auth"] == KEY
    assert (through_proxy if bypassed else direct) == []


def api_url_of(seen: Seen) -> str:
    """The origin a request through a proxy names (its absolute form), from its Host header."""
    return f"http://{seen.headers['host']}"


def test_trusted_roots_from_the_environment_else_certifi(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tests.clients.test_tls import self_signed

    ca, _ = self_signed(tmp_path)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    [only] = aio._tls_context(None).get_ca_certs()
    assert only["subject"] == ((("commonName", "octopods-test-ca"),),)
    monkeypatch.delenv("SSL_CERT_FILE")
    assert len(aio._tls_context(None).get_ca_certs()) > 50  # certifi's bundle
    assert len(aio._tls_context(str(ca)).get_ca_certs()) == 1  # a connection's ca_bundle wins


# Pacing


def test_every_try_waits_for_its_slot() -> None:
    clock = Clock()
    limiter = RateLimiter(2, burst=1, clock=clock)  # one request every 0.5 s

    async def three_reads(client: AsyncOctopodsClient) -> None:
        for _ in range(3):
            await client.get_status(42)

    _, seen, sleeps = run(three_reads, Answer(503), DELIVERED, limiter=limiter, clock=clock)
    assert len(seen) == 4
    backoff, *paced = sleeps
    # The retry waits for its slot after its backoff; the next reads, one interval each.
    assert paced == pytest.approx([0.5 - backoff, 0.5, 0.5])


async def other_call(api: ScriptedApi, client: AsyncOctopodsClient) -> None:
    await client.get_status(42)


def test_a_retried_429_pauses_every_call_sharing_the_limiter() -> None:
    clock = Clock()
    limiter = RateLimiter(100, clock=clock)
    result, seen, sleeps = run(
        lambda c: c.get_status(42),
        Answer(429, headers={"Retry-After": "1.5"}),
        DELIVERED,
        limiter=limiter,
        clock=clock,
        between=other_call,  # starts when the 429 came back, while the first call waits
    )
    assert result.status.value == "delivered"
    assert len(seen) == 3
    # The 429's own wait, then the other call's: it too waits out the pause. The first call's
    # retry comes after the pause, so it finds its slot free.
    assert sleeps == pytest.approx([1.5, 1.5])


def test_other_failures_do_not_pause_the_batch() -> None:
    clock = Clock()
    limiter = RateLimiter(100, clock=clock)
    _, _, sleeps = run(lambda c: c.get_status(42), Answer(503), DELIVERED, limiter=limiter, clock=clock)
    assert len(sleeps) == 1  # the retry's backoff only
    assert limiter.reserve() == 0.0


def test_session_opens_on_first_use_without_async_with() -> None:
    async def main() -> Any:
        async with ScriptedApi(DELIVERED) as api:
            client = AsyncOctopodsClient(ClientSettings(base_url=api.url, api_key=KEY))
            try:
                return await client.get_status(42)
            finally:
                await client.aclose()

    assert asyncio.run(main()).status.value == "delivered"


def test_a_slot_woken_up_late_starts_and_the_window_counts_it_as_made() -> None:
    clock = Clock()
    limiter = RateLimiter(2, burst=1, clock=clock)
    limiter.reserve()  # someone took the slot at 0: the next one is at 0.5

    async def busy_loop(api: ScriptedApi, client: AsyncOctopodsClient) -> None:
        clock.now += 0.2  # the event loop was busy: the sleep ends 0.2 s after its slot

    _, seen, sleeps = run(lambda c: c.get_status(42), DELIVERED, limiter=limiter, clock=clock, between=busy_loop)
    assert len(seen) == 1
    assert sleeps == pytest.approx([0.5])  # started at 0.7, 0.2 s late, without booking another slot
    assert clock.now == pytest.approx(0.7)
    # The start at 0.7, not the slot at 0.5, bounds the window: at most 2 starts in any second.
    assert [limiter.book().start for _ in range(2)] == pytest.approx([1.0, 1.7])


def test_a_slot_woken_up_after_later_bookings_relied_on_it_is_given_up_and_another_booked() -> None:
    clock = Clock()
    limiter = RateLimiter(2, burst=1, clock=clock)
    limiter.reserve()  # someone took the slot at 0: the next one is at 0.5

    async def busy_loop(api: ScriptedApi, client: AsyncOctopodsClient) -> None:
        limiter.reserve()  # two more callers booked 1.0 and 1.5 meanwhile; the one at 1.5 is a
        limiter.reserve()  # second after the slot at 0.5, and would not be after a start at 0.7
        clock.now += 0.2

    _, seen, sleeps = run(lambda c: c.get_status(42), DELIVERED, limiter=limiter, clock=clock, between=busy_loop)
    assert len(seen) == 1
    assert sleeps == pytest.approx([0.5, 1.3])  # a new slot, at 2.0, is booked
    assert clock.now == pytest.approx(2.0)


class TickingClock(Clock):
    """A clock that moves on 1 ms each time it is read, as time passes while a request is made."""

    def __call__(self) -> float:
        self.now += 0.001
        return self.now


class WriteRecordingLimiter(RateLimiter):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.written: list[tuple[int, float]] = []

    def count_written(self, booking: Booking, when: float) -> None:
        self.written.append((booking.number, when))
        super().count_written(booking, when)


@pytest.mark.parametrize("method", ["send", "status"])
def test_the_limiter_is_told_when_each_paced_request_is_written(method: str) -> None:
    """The write, after the slot's start, bounds the window: the next booking that relies on it
    comes a second after the write, not a second after the slot."""
    clock = TickingClock()
    limiter = WriteRecordingLimiter(1, burst=1, clock=clock)  # one request in any second
    call: Call = (lambda c: c.send(REQUEST)) if method == "send" else (lambda c: c.get_status(42))
    _, seen, _ = run(call, SENT if method == "send" else DELIVERED, limiter=limiter, clock=clock)
    assert len(seen) == 1
    # The one booking: a GET is told when its head is written; a POST when its head is buffered,
    # then when its body goes out with it, which is the time that counts.
    assert [number for number, _ in limiter.written] == ([0, 0] if method == "send" else [0])
    told = [when for _, when in limiter.written]
    assert told == sorted(told)
    assert limiter.book().start == pytest.approx(told[-1] + 1.0)


def test_unpaced_requests_carry_no_write_trace() -> None:
    async def main() -> Any:
        async with ScriptedApi(DELIVERED) as api:
            client = AsyncOctopodsClient(ClientSettings(base_url=api.url, api_key=KEY))
            try:
                await client.get_status(42)
                assert client._http is not None
                return client._http.trace_configs
            finally:
                await client.aclose()

    assert asyncio.run(main()) == []


# Inside Airflow, the hook makes the client from its connection


def test_the_hook_makes_the_async_client_from_its_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_octopods.hooks.octopods import OctopodsHook

    async def main() -> list[Any]:
        async with ScriptedApi(DELIVERED) as api:
            monkeypatch.setenv(
                "AIRFLOW_CONN_OCTOPODS_DEFAULT",
                json.dumps({"conn_type": "octopods", "host": api.url, "password": KEY, "extra": {"read_timeout": 7}}),
            )
            policy = RetryPolicy(max_attempts=2)
            hook = OctopodsHook(retry_policy=policy)
            made = [hook.get_async_client(max_connections=3), await hook.aget_async_client()]
            for client in made:
                assert (client.settings.base_url, client.settings.read_timeout) == (api.url, 7.0)
                assert client.retry_policy is policy
            assert (made[0].max_connections, made[1].max_connections) == (3, 10)
            assert made[0] is not made[1]  # each caller owns (and closes) its own
            async with made[1] as client:
                return [await client.get_status(42), api.seen]

    status, seen = asyncio.run(main())
    assert status.status.value == "delivered"
    assert seen[0].headers["x-octopods-auth"] == KEY


def test_a_key_that_cannot_be_written_in_a_header_is_not_sent_and_not_shown() -> None:
    broken_key = "secret-Key-1\r\nX-Injected: 1"  # settings_from_connection refuses it; settings made by hand do not

    async def main() -> tuple[errors.OctopodsError, list[Seen]]:
        async with ScriptedApi(SENT) as api:
            settings = ClientSettings(base_url=api.url, api_key=broken_key, connect_timeout=1, read_timeout=1)
            async with AsyncOctopodsClient(settings, retry_policy=RetryPolicy(max_attempts=1)) as client:
                with pytest.raises(errors.OctopodsTransportError) as err:
                    await client.send(REQUEST)
                return err.value, api.seen

    error, seen = asyncio.run(main())
    assert "nothing was sent" in str(error)
    assert "secret-Key-1" not in str(error)
    assert seen == []
