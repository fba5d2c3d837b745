"""The sync client's retry rules, with requests-mock and with real misbehaving sockets."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
import requests
import requests_mock
from urllib3.exceptions import MaxRetryError, NewConnectionError

from airflow_provider_octopods.api import build_send_request, errors
from airflow_provider_octopods.api.decision import Operation, decide
from airflow_provider_octopods.api.retry import RetryPolicy
from airflow_provider_octopods.api.settings import ClientSettings
from airflow_provider_octopods.clients.sync import OctopodsClient

BASE = "https://app.octopods.io"
SEND_URL = f"{BASE}/api/v1/sms/messages"
STATUS_URL = f"{SEND_URL}/42"
KEY = "key-Very-Secret-77"
REQUEST = build_send_request("+15551234567", "Hello")
OK_SEND = {"json": {"request_id": "r", "message_id": 42, "phone_number": "+15551234567"}, "status_code": 201}
OK_STATUS = {"json": {"message_id": 42, "status": "delivered"}, "status_code": 200}


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(sleeps: list[float]) -> OctopodsClient:
    return OctopodsClient(
        ClientSettings(base_url=BASE, api_key=KEY),
        retry_policy=RetryPolicy(max_attempts=4, backoff=0.1, max_backoff=2.0),
        sleep=sleeps.append,
    )


def refused() -> requests.ConnectionError:
    reason = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")  # type: ignore[arg-type]
    return requests.ConnectionError(MaxRetryError(None, "/api", reason))  # type: ignore[arg-type]


def reset_after_send() -> requests.ConnectionError:
    return requests.ConnectionError(
        requests.packages.urllib3.exceptions.ProtocolError(  # type: ignore[attr-defined]
            "Connection aborted.", ConnectionResetError(104, "Connection reset by peer")
        )
    )


def test_send_sends_the_documented_request(client: OctopodsClient, requests_mock: requests_mock.Mocker) -> None:
    requests_mock.post(SEND_URL, **OK_SEND)
    result = client.send(build_send_request("+15551234567", "Hi", open_intercom_conversation="yes"))
    assert result.message_id == 42
    sent = requests_mock.last_request
    assert sent.headers["X-Octopods-Auth"] == KEY
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.headers["User-Agent"].startswith("airflow-provider-octopods/")
    assert sent.json() == {"destination_phone": "+15551234567", "body": "Hi", "open_intercom_conversation": True}
    assert sent.timeout == (5.0, 30.0)


@pytest.mark.parametrize("exc", [requests.ReadTimeout("read timed out"), reset_after_send()])
def test_send_is_never_retried_when_the_outcome_is_unknown(
    client: OctopodsClient, requests_mock: requests_mock.Mocker, exc: Exception, sleeps: list[float]
) -> None:
    requests_mock.post(SEND_URL, [{"exc": exc}, OK_SEND])
    with pytest.raises(errors.OctopodsUnknownOutcomeError, match="may or may not have been sent") as err:
        client.send(REQUEST)
    assert requests_mock.call_count == 1
    assert sleeps == []
    assert KEY not in str(err.value)


@pytest.mark.parametrize("status", [500, 502, 504])
def test_send_is_not_retried_after_a_5xx_that_may_have_processed_it(
    client: OctopodsClient, requests_mock: requests_mock.Mocker, status: int
) -> None:
    requests_mock.post(SEND_URL, [{"status_code": status, "text": "<html>boom</html>"}, OK_SEND])
    with pytest.raises(errors.OctopodsServerError, match=f"HTTP {status}"):
        client.send(REQUEST)
    assert requests_mock.call_count == 1


@pytest.mark.parametrize(
    "first",
    [
        {"exc": requests.ConnectTimeout("connect timed out")},
        {"exc": refused()},
        {"status_code": 503, "text": "Service Unavailable"},
        {"status_code": 429, "json": {}, "headers": {"Retry-After": "1.5"}},
    ],
)
def test_send_is_retried_when_nothing_was_sent(
    client: OctopodsClient, requests_mock: requests_mock.Mocker, first: dict, sleeps: list[float]
) -> None:
    requests_mock.post(SEND_URL, [first, OK_SEND])
    assert client.send(REQUEST).message_id == 42
    assert requests_mock.call_count == 2
    assert len(sleeps) == 1
    if first.get("status_code") == 429:
        assert sleeps == [1.5]


def test_retry_after_is_capped(
    client: OctopodsClient, requests_mock: requests_mock.Mocker, sleeps: list[float]
) -> None:
    requests_mock.post(SEND_URL, [{"status_code": 429, "headers": {"Retry-After": "600"}}, OK_SEND])
    client.send(REQUEST)
    assert sleeps == [2.0]


def test_rate_limit_gives_up_after_max_attempts(
    client: OctopodsClient, requests_mock: requests_mock.Mocker, sleeps: list[float]
) -> None:
    requests_mock.post(SEND_URL, status_code=429, json={}, headers={"Retry-After": "1"})
    with pytest.raises(errors.OctopodsRateLimitError) as err:
        client.send(REQUEST)
    assert requests_mock.call_count == 4
    assert sleeps == [1.0, 1.0, 1.0]
    assert decide(Operation.SEND, err.value).retry_task


@pytest.mark.parametrize(
    "first",
    [
        {"exc": requests.ReadTimeout("read timed out")},
        {"exc": reset_after_send()},
        {"exc": refused()},
        {"status_code": 500, "text": "err"},
        {"status_code": 502, "text": "<html>Bad Gateway</html>"},
        {"status_code": 429},
    ],
)
def test_status_reads_are_retried_on_any_transient_failure(
    client: OctopodsClient, requests_mock: requests_mock.Mocker, first: dict
) -> None:
    requests_mock.get(STATUS_URL, [first, first, OK_STATUS])
    assert client.get_status(42).status.value == "delivered"
    assert requests_mock.call_count == 3


def test_status_backoff_grows(client: OctopodsClient, requests_mock: requests_mock.Mocker, sleeps: list[float]) -> None:
    requests_mock.get(STATUS_URL, status_code=500, text="err")
    with pytest.raises(errors.OctopodsServerError):
        client.get_status(42)
    assert requests_mock.call_count == 4
    assert 0.05 <= sleeps[0] <= 0.1
    assert 0.1 <= sleeps[1] <= 0.2
    assert 0.2 <= sleeps[2] <= 0.4


@pytest.mark.parametrize(
    ("response", "cls"),
    [
        (
            {"status_code": 400, "json": {"error_code": 3, "error": "Invalid Phone number.", "request_id": "q"}},
            errors.OctopodsInvalidPhoneError,
        ),
        ({"status_code": 400, "json": {"error_code": 5, "error": "Deprecated"}}, errors.OctopodsDeprecatedKeyError),
        ({"status_code": 401, "json": {"error": "bad key"}}, errors.OctopodsAuthError),
    ],
)
def test_client_errors_are_not_retried(
    client: OctopodsClient, requests_mock: requests_mock.Mocker, response: dict, cls: type
) -> None:
    requests_mock.post(SEND_URL, **response)
    with pytest.raises(cls):
        client.send(REQUEST)
    assert requests_mock.call_count == 1


def test_one_session_is_reused(client: OctopodsClient, requests_mock: requests_mock.Mocker) -> None:
    requests_mock.get(STATUS_URL, **OK_STATUS)
    session = client.session
    client.get_status(42)
    client.get_status(42)
    assert client.session is session


# Real sockets: a server that reads the request and then misbehaves.


class Misbehaving:
    """Accepts connections, reads one request, then stays silent or closes the socket."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.requests = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
            self.requests += 1
            if self.behaviour == "close":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                conn.close()
            else:
                self._held.append(conn)

    def stop(self) -> None:
        self._stop.set()
        for conn in self._held:
            conn.close()
        self.sock.close()


@pytest.fixture(params=["hang", "close"])
def misbehaving(request: pytest.FixtureRequest) -> Iterator[Misbehaving]:
    server = Misbehaving(request.param)
    yield server
    server.stop()


def real_client(port: int) -> OctopodsClient:
    settings = ClientSettings(base_url=f"http://127.0.0.1:{port}", api_key=KEY, connect_timeout=1, read_timeout=0.5)
    return OctopodsClient(settings, retry_policy=RetryPolicy(max_attempts=3, backoff=0.01), sleep=lambda _: None)


def test_real_socket_send_after_processing_is_reported_not_retried(misbehaving: Misbehaving) -> None:
    with pytest.raises(errors.OctopodsUnknownOutcomeError):
        real_client(misbehaving.port).send(REQUEST)
    assert misbehaving.requests == 1


def test_real_socket_status_read_is_retried(misbehaving: Misbehaving) -> None:
    with pytest.raises(errors.OctopodsServerError, match="no answer"):
        real_client(misbehaving.port).get_status(42)
    assert misbehaving.requests == 3


def test_real_socket_connection_refused_is_retried_then_reported_as_not_sent() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    with pytest.raises(errors.OctopodsTransportError, match="could not reach") as err:
        real_client(port).send(REQUEST)
    assert decide(Operation.SEND, err.value).retry_task


DEEP_JSON = b'{"message_id": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


@pytest.mark.parametrize(
    "body", [DEEP_JSON, b"[1, 2, 3]", b"\xff\xfe", b""], ids=["nested-too-deep", "not-an-object", "not-utf8", "empty"]
)
def test_any_failure_reading_a_send_answer_is_an_unknown_outcome(
    client: OctopodsClient, requests_mock: requests_mock.Mocker, body: bytes
) -> None:
    requests_mock.post(SEND_URL, status_code=201, content=body)
    with pytest.raises(errors.OctopodsUnknownOutcomeError, match="may or may not have been sent"):
        client.send(REQUEST)
    assert requests_mock.call_count == 1


def test_an_unexpected_exception_while_parsing_a_send_is_an_unknown_outcome(
    client: OctopodsClient, requests_mock: requests_mock.Mocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr("airflow_provider_octopods.api.models.SendResult.from_response", broken)
    requests_mock.post(SEND_URL, status_code=201, json={"message_id": 42})
    with pytest.raises(errors.OctopodsUnknownOutcomeError, match="RecursionError"):
        client.send(REQUEST)
    assert requests_mock.call_count == 1


def test_a_deadline_firing_after_its_try_leaves_the_pooled_connection_alone() -> None:
    import socket
    from types import SimpleNamespace

    from airflow_provider_octopods.clients.sync import _Deadline

    ours, peer = socket.socketpair()
    try:
        with _Deadline(60) as deadline:
            deadline.sending(SimpleNamespace(sock=ours))
        deadline._expire()  # the timer's call, had it fired just as the try ended
        ours.sendall(b"still open")
        assert peer.recv(16) == b"still open"
    finally:
        ours.close()
        peer.close()


def test_a_try_whose_deadline_passes_while_connecting_is_not_sent_and_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    from urllib3.connection import HTTPConnection

    from tests.security.conftest import SENT, RawServer, answer

    server = RawServer([answer(201, SENT)])
    connect = HTTPConnection.connect
    slow: list[float] = []

    def slow_first_connect(self: HTTPConnection) -> None:
        if not slow:
            slow.append(0.5)
            time.sleep(0.5)  # connects after the try's 0.3 s, without a connect timeout
        connect(self)

    monkeypatch.setattr(HTTPConnection, "connect", slow_first_connect)
    settings = ClientSettings(base_url=server.url, api_key=KEY, connect_timeout=0.1, read_timeout=0.2)
    client = OctopodsClient(settings, retry_policy=RetryPolicy(max_attempts=1), sleep=lambda _: None)
    try:
        with pytest.raises(errors.OctopodsTransportError, match="nothing was sent") as err:
            client.send(REQUEST)
        assert "connect timeout" in str(err.value)
        assert decide(Operation.SEND, err.value).retry_call
        assert server.seen == []  # the request was never written
        assert client.send(REQUEST).message_id == 42  # the connection was not left half-used
        assert len(server.seen) == 1
    finally:
        client.close()
        server.close()
