from __future__ import annotations

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


def test_extras_given_as_strings_are_coerced() -> None:
    s = settings(extra={"connect_timeout": "2.5", "read_timeout": "10", "default_region": "gb"})
    assert (s.connect_timeout, s.read_timeout, s.default_region) == (2.5, 10.0, "GB")


def test_empty_extras_fall_back_to_defaults() -> None:
    s = settings(extra={"connect_timeout": "", "read_timeout": None})
    assert (s.connect_timeout, s.read_timeout) == (5.0, 30.0)
