"""Transport guarantees, over real sockets for both clients: TLS verification always on (a private
CA may be trusted, nothing switches checks off), plain http only on loopback, the key only in its
header, and redirects never followed."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from airflow_provider_octopods.api import errors
from airflow_provider_octopods.api.decision import Operation, decide
from airflow_provider_octopods.api.errors import OctopodsConfigurationError
from airflow_provider_octopods.api.retry import RetryPolicy
from airflow_provider_octopods.api.settings import settings_from_connection
from airflow_provider_octopods.clients.sync import OctopodsClient
from tests.clients.test_tls import KEY, REQUEST, TlsApi, send_async, send_sync
from tests.security.conftest import (
    BOTH_CLIENTS,
    DELIVERED,
    SENT,
    Make,
    RawServer,
    answer,
    settings_for,
)
from tests.security.conftest import KEY as PLAIN_KEY

SEND_BOTH = pytest.mark.parametrize("send", [send_sync, send_async], ids=["sync", "async"])


@pytest.fixture
def tls_api(tmp_path: Path) -> Iterator[TlsApi]:
    server = TlsApi(tmp_path)
    yield server
    server.server.shutdown()
    server.server.server_close()


# TLS


@SEND_BOTH
def test_untrusted_certificate_is_a_not_sent_failure_naming_host_and_reason(tls_api: TlsApi, send: object) -> None:
    with pytest.raises(errors.OctopodsTLSError) as err:
        send(tls_api.settings())  # type: ignore[operator]
    text = str(err.value)
    assert f"TLS verification of {tls_api.url.removeprefix('https://')} failed" in text
    assert "self-signed certificate" in text or "self signed certificate" in text
    assert "nothing was sent" in text
    decision = decide(Operation.SEND, err.value)
    assert (decision.retry_call, decision.retry_task, decision.maybe_sent) == (False, False, False)  # cannot heal
    assert tls_api.processed == 0
    assert KEY not in text


@SEND_BOTH
def test_ca_bundle_makes_a_private_ca_trusted(tls_api: TlsApi, send: object) -> None:
    result = send(tls_api.settings(ca_bundle=tls_api.cert))  # type: ignore[operator]
    assert result.message_id == 7  # type: ignore[attr-defined]
    assert tls_api.processed == 1


def test_a_session_passed_in_cannot_switch_verification_off(tls_api: TlsApi, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(variable, raising=False)  # requests would let them override session.verify
    session = requests.Session()
    session.verify = False
    client = OctopodsClient(tls_api.settings(), retry_policy=RetryPolicy(max_attempts=1), session=session)
    with pytest.raises(errors.OctopodsTLSError):
        client.send(REQUEST)
    assert tls_api.processed == 0


@pytest.mark.parametrize("variable", ["CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE"])
@SEND_BOTH
def test_an_empty_ca_variable_does_not_switch_verification_off(
    tls_api: TlsApi, send: object, variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, "")
    with pytest.raises(errors.OctopodsTLSError):
        send(tls_api.settings())  # type: ignore[operator]
    assert tls_api.processed == 0


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("verify", False),
        ("verify", "false"),
        ("verify", "False"),
        ("verify_ssl", "0"),
        ("verify_ssl", 0),
        ("ssl_verify", "no"),
        ("tls_verify", "off"),
        ("insecure", True),
        ("insecure", "true"),
        ("insecure", "1"),
        ("insecure", "yes"),
        ("insecure", "on"),
        ("verify", "/etc/ssl/private-ca.pem"),
    ],
)
def test_tls_verification_cannot_be_switched_off(key: str, value: object) -> None:
    with pytest.raises(OctopodsConfigurationError, match="cannot be switched off") as err:
        settings_from_connection("octo", host=None, password=PLAIN_KEY, extra={key: value})
    message = str(err.value)
    assert "'octo'" in message
    assert f"extra {key}=" in message
    assert "set extra ca_bundle" in message
    assert PLAIN_KEY not in message


@pytest.mark.parametrize(
    "extra", [{"verify": True}, {"verify_ssl": "true"}, {"tls_verify": "1"}, {"insecure": False}, {"insecure": "no"}]
)
def test_tls_extras_that_keep_verification_on_are_accepted(extra: dict[str, object]) -> None:
    settings = settings_from_connection("octo", host=None, password=PLAIN_KEY, extra=extra)
    assert (settings.base_url, settings.ca_bundle) == ("https://app.octopods.io", None)


# Plain http: loopback only


@pytest.mark.parametrize(
    "host",
    [
        "http://127.0.0.1.nip.io",
        "http://localhost.evil.com",
        "http://[::ffff:127.0.0.1]",
        "http://[::ffff:7f00:1]:8080",
        "http://app.octopods.io",
        "http://10.0.0.1",
        "http://0.0.0.0:8080",
        "http://localhost@evil.com",
    ],
)
def test_plain_http_is_refused_off_loopback(host: str) -> None:
    with pytest.raises(OctopodsConfigurationError) as err:
        settings_from_connection("octo", host=host, password=PLAIN_KEY)
    assert "not https" in str(err.value) or "no credentials" in str(err.value)


def test_an_ipv4_address_written_as_ipv6_is_refused_where_python_calls_it_loopback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Python 3.13 and later judge ::ffff:127.0.0.1 by its IPv4 address; earlier versions do not.
    def loopback_like_313(address: ipaddress.IPv6Address) -> bool:
        mapped = address.ipv4_mapped
        return mapped.is_loopback if mapped is not None else address == ipaddress.IPv6Address("::1")

    monkeypatch.setattr(ipaddress.IPv6Address, "is_loopback", property(loopback_like_313))
    assert ipaddress.ip_address("::ffff:127.0.0.1").is_loopback
    with pytest.raises(OctopodsConfigurationError, match="not https"):
        settings_from_connection("octo", host="http://[::ffff:127.0.0.1]:8080", password=PLAIN_KEY)


@pytest.mark.parametrize(
    "host", ["http://127.0.0.1:8080", "http://127.0.0.2", "http://localhost:8080", "http://[::1]:8080"]
)
def test_plain_http_is_allowed_on_loopback(host: str) -> None:
    assert settings_from_connection("octo", host=host, password=PLAIN_KEY).base_url == host


# The key travels only in its header


@BOTH_CLIENTS
@pytest.mark.parametrize("operation", list(Operation))
def test_the_key_is_only_in_its_header(serve: Callable[..., RawServer], make: Make, operation: Operation) -> None:
    sending = operation is Operation.SEND
    server = serve(answer(201, SENT) if sending else answer(200, DELIVERED))
    make(settings_for(server.url), operation, 1)
    (seen,) = server.seen
    assert seen.path == "/api/v1/sms/messages" + ("" if sending else "/42")
    assert seen.headers["x-octopods-auth"] == PLAIN_KEY
    others = {name: value for name, value in seen.headers.items() if name != "x-octopods-auth"}
    assert PLAIN_KEY not in repr(others)
    assert "authorization" not in seen.headers


@BOTH_CLIENTS
def test_the_key_is_in_no_error(make: Make) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))  # bound, not listening: connecting is refused
        url = f"http://127.0.0.1:{unused.getsockname()[1]}"
        with pytest.raises(errors.OctopodsTransportError) as err:
            make(settings_for(url), Operation.SEND, 1)
    assert PLAIN_KEY not in str(err.value)
    assert PLAIN_KEY not in repr(settings_for(url))


# Redirects are answers, never followed


@BOTH_CLIENTS
@pytest.mark.parametrize("operation", list(Operation))
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_never_followed(
    serve: Callable[..., RawServer], make: Make, operation: Operation, status: int
) -> None:
    target = serve(answer(201, SENT), answer(200, DELIVERED))
    redirect = serve(answer(status, b"", Location=f"{target.url}/api/v1/sms/messages/42"))
    with pytest.raises(errors.OctopodsAPIError, match=f"HTTP {status}"):
        make(settings_for(redirect.url), operation, 4)
    assert len(target.seen) == 0
    assert len(redirect.seen) == 1
