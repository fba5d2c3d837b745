"""Client settings read from an ``octopods`` connection, validated before any request."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from airflow_provider_octopods.api.errors import OctopodsConfigurationError, OctopodsValidationError
from airflow_provider_octopods.api.validation import positive_number, validate_region

DEFAULT_BASE_URL = "https://app.octopods.io"
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 30.0


@dataclass(frozen=True)
class ClientSettings:
    """Everything a client needs. ``api_key`` is excluded from ``repr`` so it never lands in logs."""

    base_url: str
    api_key: str = field(repr=False)
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    default_region: str | None = None


def settings_from_connection(
    conn_id: str,
    *,
    host: str | None,
    password: str | None,
    schema: str | None = None,
    port: int | None = None,
    extra: Mapping[str, object] | None = None,
) -> ClientSettings:
    """Validate a connection's fields into :class:`ClientSettings`.

    ``host`` is the base URL (``https://app.octopods.io`` when empty); plain ``http`` is only
    allowed for loopback addresses such as the local sandbox. ``password`` is the channel API key.
    Extras: ``connect_timeout``, ``read_timeout`` (seconds) and ``default_region`` (e.g. ``US``).
    Errors name the connection id and the field, never the key.
    """
    if not password or not password.strip():
        raise OctopodsConfigurationError(
            f"connection {conn_id!r} has no API key: put the channel API key in its password field"
        )
    if any(not c.isprintable() or c.isspace() for c in password.strip()) or not password.strip().isascii():
        raise OctopodsConfigurationError(
            f"connection {conn_id!r} API key contains spaces, line breaks or non-ASCII characters; "
            "paste the key again exactly as the Octopods dashboard shows it"
        )
    extras = {k: v for k, v in dict(extra or {}).items() if v not in (None, "")}
    try:
        base_url = _base_url(conn_id, host, schema, port)
        return ClientSettings(
            base_url=base_url,
            api_key=password.strip(),
            connect_timeout=positive_number(
                extras.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT), field="connect_timeout"
            ),
            read_timeout=positive_number(extras.get("read_timeout", DEFAULT_READ_TIMEOUT), field="read_timeout"),
            default_region=validate_region(extras["default_region"]) if "default_region" in extras else None,
        )
    except OctopodsValidationError as err:
        raise OctopodsConfigurationError(f"connection {conn_id!r} extra {err.field}: {err.problem}") from None


def _base_url(conn_id: str, host: str | None, schema: str | None, port: int | None) -> str:
    text = (host or "").strip()
    if not text:
        return DEFAULT_BASE_URL
    if "://" not in text:
        # Airflow URIs such as octopods://127.0.0.1:8080 arrive as host + port, with the
        # scheme (if any) in "schema"; a bare host means https.
        scheme = schema.strip().lower() if schema and schema.strip().lower() in ("http", "https") else "https"
        text = f"{scheme}://{text}{f':{port}' if port else ''}"
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OctopodsConfigurationError(
            f"connection {conn_id!r} host {text!r} is not a URL such as {DEFAULT_BASE_URL}"
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise OctopodsConfigurationError(
            f"connection {conn_id!r} host must be a plain base URL (no credentials, query or fragment)"
        )
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise OctopodsConfigurationError(
            f"connection {conn_id!r} host {parts.scheme}://{parts.hostname} is not https; plain http is "
            "only allowed on loopback (the local sandbox), so that the API key is never sent in clear"
        )
    return text.rstrip("/")


def _is_loopback(hostname: str) -> bool:
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False
