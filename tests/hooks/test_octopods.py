from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests_mock

from airflow_provider_octopods.api import build_send_request, errors
from airflow_provider_octopods.hooks.octopods import OctopodsHook
from tests.conftest import TEST_KEY, connection_json

SEND_URL = "https://app.octopods.io/api/v1/sms/messages"


def test_hook_identity() -> None:
    assert OctopodsHook.conn_type == "octopods"
    assert OctopodsHook.default_conn_name == "octopods_default"
    assert OctopodsHook.conn_name_attr == "octopods_conn_id"


def test_missing_connection_is_a_clear_error_naming_it(requests_mock: requests_mock.Mocker) -> None:
    with pytest.raises(
        errors.OctopodsConfigurationError,
        match="'octopods_nowhere' was not found in the environment variable AIRFLOW_CONN_OCTOPODS_NOWHERE",
    ) as err:
        OctopodsHook("octopods_nowhere").send_sms("+15551234567", "Hi")
    assert "AIRFLOW_CONN_OCTOPODS_NOWHERE" in str(err.value)
    assert requests_mock.call_count == 0


@pytest.mark.parametrize(
    ("conn", "problem"),
    [
        (connection_json(key=None), "has no API key"),
        (connection_json(key="***"), "masked placeholder"),
        (connection_json(host="http://api.example.com"), "not https"),
        (connection_json(read_timeout="soon"), "extra read_timeout"),
    ],
)
def test_unusable_connection_fails_before_any_request(
    monkeypatch: pytest.MonkeyPatch, requests_mock: requests_mock.Mocker, conn: str, problem: str
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_OCTOPODS_DEFAULT", conn)
    with pytest.raises(errors.OctopodsConfigurationError, match=problem) as err:
        OctopodsHook().send_sms("+15551234567", "Hi")
    assert "'octopods_default'" in str(err.value)
    assert TEST_KEY not in str(err.value)
    assert requests_mock.call_count == 0


def test_bad_input_fails_before_any_request(octopods_conn: str, requests_mock: requests_mock.Mocker) -> None:
    hook = OctopodsHook()
    with pytest.raises(errors.OctopodsValidationError, match=r"^phone: "):
        hook.send_sms("555-1234", "Hi")
    with pytest.raises(errors.OctopodsValidationError, match=r"^body: is empty"):
        hook.send_sms("+15551234567", "  ")
    with pytest.raises(errors.OctopodsValidationError, match=r"^message_id: "):
        hook.get_status("../../admin")
    assert requests_mock.call_count == 0


def test_send_and_status(octopods_conn: str, requests_mock: requests_mock.Mocker, read_logs: Callable[[], str]) -> None:
    requests_mock.post(
        SEND_URL, status_code=201, json={"request_id": "r", "message_id": 7, "phone_number": "+15551234567"}
    )
    requests_mock.get(f"{SEND_URL}/7", json={"message_id": 7, "status": "SENT", "status_message": "on its way"})
    hook = OctopodsHook()
    result = hook.send_sms("+1 555 123 4567", "Hello 🙂", destination_user_name="Jane")
    status = hook.get_status("7")
    logs = read_logs()
    assert result.message_id == 7
    assert (result.segments, result.encoding.value) == (1, "UCS-2")
    assert status.status.value == "sent"
    assert requests_mock.request_history[0].json()["destination_user_name"] == "Jane"
    assert hook.get_conn() is hook.get_conn()
    assert "+1*******567" in logs
    assert "5551234567" not in logs
    assert "1 segment(s), UCS-2" in logs
    assert TEST_KEY not in logs


def test_region_from_connection_extra_and_hook_override(
    monkeypatch: pytest.MonkeyPatch, requests_mock: requests_mock.Mocker
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_OCTOPODS_DEFAULT", connection_json(default_region="GB"))
    requests_mock.post(SEND_URL, status_code=201, json={"request_id": "r", "message_id": 1})
    OctopodsHook().send_sms("07700 900123", "Hi")
    assert requests_mock.last_request.json()["destination_phone"] == "+447700900123"
    OctopodsHook(default_region="US").send_sms("(202) 555-0143", "Hi")
    assert requests_mock.last_request.json()["destination_phone"] == "+12025550143"


def test_prefixed_form_extras_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_OCTOPODS_DEFAULT",
        connection_json(extra__octopods__read_timeout="12", extra__octopods__default_region="us"),
    )
    settings = OctopodsHook().settings
    assert (settings.read_timeout, settings.default_region) == (12.0, "US")


def test_hubspot_send_warns_untrackable(
    octopods_conn: str, requests_mock: requests_mock.Mocker, read_logs: Callable[[], str]
) -> None:
    requests_mock.post(SEND_URL, status_code=201, json={"request_id": "hub-1"})
    result = OctopodsHook().send_sms("+15551234567", "Hi")
    assert result.message_id is None
    assert "cannot be tracked" in read_logs()


@pytest.mark.parametrize(
    ("response", "ok", "text"),
    [
        ({"status_code": 400, "json": {"error_code": 1, "error": "Message not found."}}, True, "API key was accepted"),
        ({"status_code": 401, "json": {"error": "Invalid API key."}}, False, "refused"),
        ({"status_code": 400, "json": {"error_code": 5, "error": "Deprecated"}}, False, "rotated or revoked"),
        ({"status_code": 404, "text": "nope"}, False, "does not look like the Octopods API at https://app.octopods.io"),
        ({"status_code": 200, "text": "<html>login</html>"}, False, "does not look like the Octopods API"),
        ({"status_code": 302, "headers": {"Location": "https://elsewhere"}}, False, "does not look like"),
        ({"status_code": 404, "json": {"error_code": 1, "error": "Message not found."}}, True, "API key was accepted"),
    ],
)
def test_test_connection_never_sends(
    octopods_conn: str, requests_mock: requests_mock.Mocker, response: dict, ok: bool, text: str
) -> None:
    requests_mock.get(f"{SEND_URL}/0", **response)
    requests_mock.post(SEND_URL, status_code=500)
    result, message = OctopodsHook().test_connection()
    assert result is ok
    assert text in message
    assert all(r.method == "GET" for r in requests_mock.request_history)
    assert TEST_KEY not in message


def test_ui_field_behaviour() -> None:
    behaviour = OctopodsHook.get_ui_field_behaviour()
    assert set(behaviour["hidden_fields"]) == {"login", "schema", "port"}
    assert behaviour["relabeling"]["password"] == "API key"


def test_test_connection_against_the_sandbox_and_against_something_else(
    octopods_sandbox_factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import http.server
    import threading

    server = octopods_sandbox_factory()
    monkeypatch.setenv("AIRFLOW_CONN_OCTOPODS_DEFAULT", server.connection_json(TEST_KEY))
    ok, message = OctopodsHook().test_connection()
    assert ok, message
    assert [r.method for r in server.requests()] == ["GET"]

    seen: list[str] = []

    class NotTheApi(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(404)
            self.send_header("Content-Length", "9")
            self.end_headers()
            self.wfile.write(b"Not Found")

        def log_message(self, *args: object) -> None:
            pass

    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotTheApi)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{other.server_address[1]}"
        monkeypatch.setenv("AIRFLOW_CONN_OCTOPODS_DEFAULT", connection_json(host=url))
        ok, message = OctopodsHook().test_connection()
    finally:
        other.shutdown()
    assert not ok
    assert f"does not look like the Octopods API at {url}" in message
    assert len(seen) == 1  # one try, no retries


def test_test_connection_makes_one_short_try(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_octopods.clients.sync import OctopodsClient

    monkeypatch.setenv("AIRFLOW_CONN_OCTOPODS_DEFAULT", connection_json(read_timeout=60, connect_timeout=20))
    seen: list[tuple[float, float, int]] = []

    def get_status(self: OctopodsClient, message_id: object) -> None:
        seen.append((self.settings.connect_timeout, self.settings.read_timeout, self.retry_policy.max_attempts))
        raise errors.OctopodsTransportError("could not reach the Octopods API (read timeout)")

    monkeypatch.setattr(OctopodsClient, "get_status", get_status)
    ok, message = OctopodsHook().test_connection()
    assert not ok
    assert "Could not reach the Octopods API at https://app.octopods.io" in message
    assert seen == [(3.0, 5.0, 1)]


def test_key_travels_per_request_never_on_a_shared_session(requests_mock: requests_mock.Mocker) -> None:
    import requests

    from airflow_provider_octopods.api.settings import ClientSettings
    from airflow_provider_octopods.clients.sync import OctopodsClient

    shared = requests.Session()
    requests_mock.post(SEND_URL, status_code=201, json={"message_id": 1})
    client = OctopodsClient(ClientSettings("https://app.octopods.io", TEST_KEY), session=shared)
    client.send(build_send_request("+15551234567", "Hi"))
    assert requests_mock.last_request.headers["X-Octopods-Auth"] == TEST_KEY
    assert TEST_KEY not in str(dict(shared.headers))


def test_a_refused_key_names_the_connection_and_the_host_and_http_401_once(
    octopods_conn: str, requests_mock: requests_mock.Mocker
) -> None:
    requests_mock.post(SEND_URL, status_code=401, json={"error": "Invalid API key.", "request_id": "req-401"})
    requests_mock.get(f"{SEND_URL}/7", status_code=401, json={"request_id": "req-402"})
    hook = OctopodsHook()
    with pytest.raises(errors.OctopodsAuthError) as sent:
        hook.send_sms("+15551234567", "Hi")
    with pytest.raises(errors.OctopodsAuthError) as read:
        hook.get_status(7)
    for err, request_id in ((sent.value, "req-401"), (read.value, "req-402")):
        text = str(err)
        assert "of connection 'octopods_default'" in text
        assert "refused by app.octopods.io during " in text
        assert text.count("HTTP 401") == 1
        assert f"request_id={request_id}" in text
        assert TEST_KEY not in text
    assert str(sent.value).startswith("the API key was refused by app.octopods.io during send (HTTP 401")


@pytest.mark.parametrize("how", ["send_sms", "get_status", "async send", "async status", "test_connection"])
def test_a_key_the_sandbox_refuses_names_the_connection_and_the_host(
    octopods_sandbox_factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    import asyncio
    from urllib.parse import urlsplit

    server = octopods_sandbox_factory(api_keys=frozenset({"the-right-key"}))
    monkeypatch.setenv("AIRFLOW_CONN_OCTOPODS_LOCKED", server.connection_json("a-wrong-key"))
    hook = OctopodsHook("octopods_locked")

    async def through_the_async_client() -> None:
        async with await hook.aget_async_client() as client:
            if how == "async send":
                await client.send(hook.build_send_request("+15005550100", "Hi"))
            else:
                await client.get_status(7)

    calls: dict[str, Callable[[], object]] = {
        "send_sms": lambda: hook.send_sms("+15005550100", "Hi"),
        "get_status": lambda: hook.get_status(7),
        "async send": lambda: asyncio.run(through_the_async_client()),
        "async status": lambda: asyncio.run(through_the_async_client()),
    }
    if how == "test_connection":
        ok, text = hook.test_connection()
        assert not ok
    else:
        with pytest.raises(errors.OctopodsAuthError) as err:
            calls[how]()
        text = str(err.value)
    assert f"refused by {urlsplit(server.url).netloc} during " in text
    assert "connection 'octopods_locked'" in text
    assert text.count("HTTP 401") == 1
    assert "a-wrong-key" not in text
    assert server.messages() == []
