"""Client settings read from an ``octopods`` connection, validated before any request."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from airflow_provider_octopods.api.errors import OctopodsConfigurationError, OctopodsValidationError
from airflow_provider_octopods.api.validation import coerce_bool, positive_number, validate_region

DEFAULT_BASE_URL = "https://app.octopods.io"
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 30.0

# Extras that, in other clients, switch certificate checks off: refused, never honoured.
_VERIFY_EXTRAS = ("verify", "verify_ssl", "ssl_verify", "tls_verify")
_INSECURE_EXTRAS = ("insecure",)
# Everything before the last "@" of a host (after any "scheme://"): the userinfo, maybe a password.
_USERINFO = re.compile(r"^((?:[A-Za-z][A-Za-z0-9+.\-]*:)?//)?.*@", re.DOTALL)


@dataclass(frozen=True)
class ClientSettings:
    """Everything a client needs. ``api_key`` is excluded from ``repr`` so it never lands in logs.

    :param base_url: the API base URL, without a trailing slash.
    :param api_key: the channel API key.
    :param connect_timeout: seconds to wait for a connection.
    :param read_timeout: seconds to wait for a response.
    :param default_region: region for phone numbers written without ``+country``.
    :param ca_bundle: path of a PEM file of CA certificates to trust instead of the system ones.
    :param scheme_hint: set when the host had no scheme and https was assumed: a sentence the
        clients append to TLS and connection errors, saying how to write the host instead.
    :param conn_id: the Airflow connection the key came from, named when the API refuses it.
    """

    base_url: str
    api_key: str = field(repr=False)
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    default_region: str | None = None
    ca_bundle: str | None = None
    scheme_hint: str | None = None
    conn_id: str | None = None

    @property
    def try_timeout(self) -> float:
        """Seconds one try of a call may take in all (connecting, sending, reading the whole
        answer): ``connect_timeout + read_timeout``. Both clients end a try that runs longer."""
        return self.connect_timeout + self.read_timeout


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

    ``host`` is the base URL (``https://app.octopods.io`` when empty), without whitespace or
    control characters inside it; plain ``http`` is only allowed for loopback addresses such as
    the local sandbox. ``password`` is the channel API key.
    Extras: ``connect_timeout``, ``read_timeout`` (seconds), ``default_region`` (e.g. ``US``) and
    ``ca_bundle`` (path of a PEM file of CA certificates to trust). TLS verification cannot be
    switched off: ``verify``, ``verify_ssl``, ``ssl_verify``, ``tls_verify`` set to false or
    ``insecure`` set to true are refused. Errors name the connection id and the field, never the key.

    :param conn_id: the connection id, named in every error.
    :param host: the connection's host field.
    :param password: the connection's password field (the channel API key).
    :param schema: the connection's schema field (``http``/``https`` from an Airflow URI).
    :param port: the connection's port field.
    :param extra: the connection's extras.
    :raises OctopodsConfigurationError: when a field or extra is missing or unusable.
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
    _refuse_unverified_tls(conn_id, extras)
    base_url, scheme_hint = _base_url(conn_id, host, schema, port)
    try:
        return ClientSettings(
            base_url=base_url,
            api_key=password.strip(),
            connect_timeout=positive_number(
                extras.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT), field="connect_timeout"
            ),
            read_timeout=positive_number(extras.get("read_timeout", DEFAULT_READ_TIMEOUT), field="read_timeout"),
            default_region=validate_region(extras["default_region"]) if "default_region" in extras else None,
            ca_bundle=_ca_bundle(conn_id, extras["ca_bundle"]) if "ca_bundle" in extras else None,
            scheme_hint=scheme_hint,
            conn_id=conn_id,
        )
    except OctopodsValidationError as err:
        raise OctopodsConfigurationError(f"connection {conn_id!r} extra {err.field}: {err.problem}") from None


def _refuse_unverified_tls(conn_id: str, extras: Mapping[str, object]) -> None:
    for key in (*_VERIFY_EXTRAS, *_INSECURE_EXTRAS):
        if key not in extras:
            continue
        value = extras[key]
        try:
            flag = coerce_bool(value, field=key)
        except OctopodsValidationError:
            flag = None
        off = flag is True if key in _INSECURE_EXTRAS else flag is False
        if flag is None or off:
            problem = "would switch TLS certificate verification off" if off else "is not a boolean"
            raise OctopodsConfigurationError(
                f"connection {conn_id!r} extra {key}={value!r} {problem}; TLS certificate verification "
                "cannot be switched off. To trust a private CA, set extra ca_bundle to the path of its "
                "PEM certificate file"
            )


def _ca_bundle(conn_id: str, value: object) -> str:
    if not isinstance(value, str):
        raise OctopodsConfigurationError(
            f"connection {conn_id!r} extra ca_bundle must be the path of a PEM file, got {type(value).__name__}"
        )
    path = os.path.expanduser(value.strip())
    if not os.path.exists(path):
        raise OctopodsConfigurationError(f"connection {conn_id!r} extra ca_bundle: {path!r} does not exist")
    if not os.path.isfile(path):
        raise OctopodsConfigurationError(
            f"connection {conn_id!r} extra ca_bundle: {path!r} is not a file (expected a PEM file of CA certificates)"
        )
    return path


def _base_url(conn_id: str, host: str | None, schema: str | None, port: int | None) -> tuple[str, str | None]:
    """Return the base URL and, when https was assumed for a host without scheme, the hint."""
    text = (host or "").strip(" ")  # spaces around it, as a form may leave; nothing else is forgiven
    if text:
        _refuse_unprintable_host(conn_id, text)
    if not text:
        return DEFAULT_BASE_URL, None
    assumed_https = None
    if "://" not in text:
        # Airflow URIs such as octopods://127.0.0.1:8080 arrive as host + port, with the
        # scheme (if any) in "schema"; a bare host means https.
        given = schema.strip().lower() if schema and schema.strip().lower() in ("http", "https") else None
        address = f"{text}{f':{port}' if port else ''}"
        text = f"{given or 'https'}://{address}"
        assumed_https = None if given else address
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OctopodsConfigurationError(
            f"connection {conn_id!r} host {_without_userinfo(text)!r} is not a URL such as {DEFAULT_BASE_URL}"
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise OctopodsConfigurationError(
            f"connection {conn_id!r} host must be a plain base URL (no credentials, query or fragment)"
        )
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise OctopodsConfigurationError(
            f"connection {conn_id!r} host {parts.scheme}://{parts.hostname} is not https; plain http is "
            "only allowed on loopback (the local sandbox), so that the API key is never sent in clear"
        )
    hint = _scheme_hint(assumed_https, parts.hostname) if assumed_https else None
    return text.rstrip("/"), hint


def _refuse_unprintable_host(conn_id: str, host: str) -> None:
    """Refuse a host holding whitespace or a control character (a line break could add a header
    to every request). The error shows the character's code and position, never the host, which
    may hold a password."""
    for position, char in enumerate(host, start=1):
        if char.isspace() or not char.isprintable():
            kind = "a line break" if char in "\r\n" else "whitespace" if char.isspace() else "a control character"
            raise OctopodsConfigurationError(
                f"connection {conn_id!r} host contains {kind} (U+{ord(char):04X} at position {position}); "
                f"write the base URL alone on one line, such as {DEFAULT_BASE_URL}"
            )


def _without_userinfo(host: str) -> str:
    """``host`` with any ``user:password@`` part masked: connection errors never echo a secret."""
    return _USERINFO.sub(lambda match: f"{match.group(1) or ''}***@", host, count=1)


def _scheme_hint(address: str, hostname: str) -> str:
    hint = (
        f"the connection's host {address!r} has no scheme, so https:// was assumed; write the scheme "
        f"in the host field: https://{address}"
    )
    if is_loopback_host(hostname):
        return f"{hint} or, for a local sandbox on loopback only, http://{address}"
    return f"{hint} (plain http:// is only allowed on loopback)"


def is_loopback_host(hostname: str) -> bool:
    """Whether ``hostname`` is this machine (a local sandbox; the real API never is).

    Only ``localhost`` and loopback addresses (``127.0.0.0/8``, ``::1``) are: not names that merely
    start with them (``localhost.example.com``, ``127.0.0.1.nip.io``), and not IPv4 addresses
    written as IPv6 (``::ffff:127.0.0.1``), which some Python versions count as loopback.
    """
    if hostname == "localhost":
        return True
    try:
        address = ipaddress.ip_address(hostname)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return False
    return address.is_loopback
