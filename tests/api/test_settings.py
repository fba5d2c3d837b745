from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_octopods.api.errors import OctopodsConfigurationError
from airflow_provider_octopods.api.settings import settings_from_connection

KEY = "k-Secret-123"


def settings(**kw: object):
    values: dict = {"host": None, "password": KEY} | kw
    return settings_from_connection("octo", **values)


def test_defaults() -> None:
    s = settings()
    assert (s.base_url, s.connect_timeout, s.read_timeout, s.default_region) == (
        "https://app.octopods.io",
        5.0,
        30.0,
        None,
    )
    assert KEY not in repr(s)


@pytest.mark.parametrize(
    ("kw", "url"),
    [
        ({"host": "https://api.octopods.io/"}, "https://api.octopods.io"),
        ({"host": "api.octopods.io"}, "https://api.octopods.io"),
        ({"host": "127.0.0.1", "port": 8080, "schema": "http"}, "http://127.0.0.1:8080"),
        ({"host": "http://localhost:9000"}, "http://localhost:9000"),
        ({"host": "http://[::1]:9000"}, "http://[::1]:9000"),
    ],
)
def test_base_urls(kw: dict, url: str) -> None:
    assert settings(**kw).base_url == url


@pytest.mark.parametrize(
    ("kw", "problem"),
    [
        ({"password": None}, "has no API key"),
        ({"password": "  "}, "has no API key"),
        ({"password": "abc\ndef"}, "contains spaces, line breaks"),
        ({"password": "abc déf"}, "contains spaces, line breaks"),
        ({"host": "http://app.octopods.io"}, "not https"),
        ({"host": "ftp://x"}, "is not a URL"),
        ({"host": "https://user:pw@x.io"}, "plain base URL"),
        ({"extra": {"read_timeout": "abc"}}, "extra read_timeout: must be a positive number"),
        ({"extra": {"connect_timeout": -1}}, "extra connect_timeout"),
        ({"extra": {"default_region": "USA"}}, "extra default_region"),
    ],
)
def test_bad_connections_name_the_connection(kw: dict, problem: str) -> None:
    with pytest.raises(OctopodsConfigurationError, match=problem) as err:
        settings(**kw)
    assert "'octo'" in str(err.value)
    assert KEY not in str(err.value)


@pytest.mark.parametrize(
    ("host", "problem"),
    [
        ("http://127.0.0.1:5/a\r\nX: y", "a line break (U+000D at position 21)"),
        ("http://127.0.0.1:5/a\nX-Injected: 1", "a line break (U+000A at position 21)"),
        ("https://app.octopods.io\t/x", "whitespace (U+0009 at position 24)"),
        ("https://app. octopods.io", "whitespace (U+0020 at position 13)"),
        ("https://app.octopods.io\x00", "control character (U+0000 at position 24)"),
        ("https://app.octo\u00a0pods.io", "whitespace (U+00A0 at position 17)"),
        ("https://app.octo\u200bpods.io", "control character (U+200B at position 17)"),
        ("127.0.0.1\r\nHost: evil", "a line break (U+000D at position 10)"),
    ],
    ids=["crlf-header", "lf-header", "tab", "space", "nul", "nbsp", "zero-width", "bare-host-crlf"],
)
def test_a_host_with_whitespace_or_control_characters_is_refused(host: str, problem: str) -> None:
    with pytest.raises(OctopodsConfigurationError) as err:
        settings(host=host, port=8080, schema="http")
    message = str(err.value)
    assert message.startswith("connection 'octo' host contains ")
    assert problem in message
    assert host.strip() not in message
    assert KEY not in message


def test_a_host_holding_the_key_and_a_line_break_never_echoes_the_key() -> None:
    with pytest.raises(OctopodsConfigurationError, match="host contains a line break") as err:
        settings(host=f"https://user:{KEY}@sms.example.com\r\nX-Octopods-Auth: {KEY}")
    assert KEY not in str(err.value)
    assert "example.com" not in str(err.value)


def test_spaces_around_the_host_are_not_part_of_it_but_a_line_break_is_refused() -> None:
    assert settings(host="  https://api.octopods.io/ ").base_url == "https://api.octopods.io"
    with pytest.raises(OctopodsConfigurationError, match="host contains a line break"):
        settings(host="https://api.octopods.io/\n")
    with pytest.raises(OctopodsConfigurationError, match="host contains whitespace"):
        settings(host="\thttps://api.octopods.io/")


def test_extras_given_as_strings_are_coerced() -> None:
    s = settings(extra={"connect_timeout": "2.5", "read_timeout": "10", "default_region": "gb"})
    assert (s.connect_timeout, s.read_timeout, s.default_region) == (2.5, 10.0, "GB")


def test_empty_extras_fall_back_to_defaults() -> None:
    s = settings(extra={"connect_timeout": "", "read_timeout": None})
    assert (s.connect_timeout, s.read_timeout) == (5.0, 30.0)


def test_ca_bundle_must_be_an_existing_file(tmp_path: Path) -> None:
    pem = tmp_path / "private-ca.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\n")
    s = settings(extra={"ca_bundle": str(pem)})
    assert s.ca_bundle == str(pem)
    assert settings().ca_bundle is None
    with pytest.raises(OctopodsConfigurationError, match=r"connection 'octo' extra ca_bundle: .* does not exist"):
        settings(extra={"ca_bundle": str(tmp_path / "missing.pem")})
    with pytest.raises(OctopodsConfigurationError, match=r"connection 'octo' extra ca_bundle: .* is not a file"):
        settings(extra={"ca_bundle": str(tmp_path)})
    with pytest.raises(OctopodsConfigurationError, match="connection 'octo' extra ca_bundle must be the path"):
        settings(extra={"ca_bundle": ["a.pem"]})


def test_scheme_hint_when_https_was_assumed_for_a_bare_host() -> None:
    local = settings(host="127.0.0.1", port=18080)
    assert local.base_url == "https://127.0.0.1:18080"
    assert local.scheme_hint == (
        "the connection's host '127.0.0.1:18080' has no scheme, so https:// was assumed; write the scheme "
        "in the host field: https://127.0.0.1:18080 or, for a local sandbox on loopback only, "
        "http://127.0.0.1:18080"
    )
    remote = settings(host="api.octopods.io")
    assert remote.scheme_hint is not None
    assert "https://api.octopods.io (plain http:// is only allowed on loopback)" in remote.scheme_hint
    assert "sandbox" not in remote.scheme_hint
    assert "scheme_hint=" in repr(local)
    assert KEY not in repr(local)


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"host": "https://api.octopods.io"},
        {"host": "http://127.0.0.1:18080"},
        {"host": "127.0.0.1", "port": 18080, "schema": "http"},
        {"host": "api.octopods.io", "schema": "https"},
    ],
)
def test_no_scheme_hint_when_the_scheme_was_given(kw: dict) -> None:
    assert settings(**kw).scheme_hint is None
