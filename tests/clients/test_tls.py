"""TLS on 127.0.0.1 for both clients: the private-CA server used here and by
``tests/security/test_transport.py`` (verification on by default, ``ca_bundle``, no off switch),
and the hint given when https was assumed for a plain-http sandbox."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from airflow_provider_octopods.api import build_send_request, errors
from airflow_provider_octopods.api.retry import RetryPolicy
from airflow_provider_octopods.api.settings import ClientSettings, settings_from_connection
from airflow_provider_octopods.clients.aio import AsyncOctopodsClient
from airflow_provider_octopods.clients.sync import OctopodsClient

KEY = "tls-Key-Secret-31"
REQUEST = build_send_request("+15551234567", "Hello over TLS")


def self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "octopods-test-ca")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "ca.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class TlsApi:
    """A one-endpoint HTTPS server that accepts every send; counts the requests it processed."""

    def __init__(self, folder: Path) -> None:
        self.cert, key = self_signed(folder)
        self.processed = 0
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                api.processed += 1
                body = json.dumps({"request_id": "r", "message_id": 7}).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def settings(self, ca_bundle: Path | None = None) -> ClientSettings:
        extra = {"ca_bundle": str(ca_bundle)} if ca_bundle else {}
        return settings_from_connection("octopods_default", host=self.url, password=KEY, extra=extra)


def send_sync(settings: ClientSettings) -> object:
    return OctopodsClient(settings, retry_policy=RetryPolicy(max_attempts=1)).send(REQUEST)


def send_async(settings: ClientSettings) -> object:
    async def main() -> object:
        async with AsyncOctopodsClient(settings, retry_policy=RetryPolicy(max_attempts=1)) as client:
            return await client.send(REQUEST)

    return asyncio.run(main())


@pytest.mark.parametrize("send", [send_sync, send_async], ids=["sync", "async"])
def test_https_assumed_for_a_plain_http_sandbox_says_what_to_write(send: object) -> None:
    from airflow_provider_octopods.sandbox import SandboxServer

    with SandboxServer() as sandbox:
        port = int(sandbox.url.rsplit(":", 1)[1])
        settings = settings_from_connection("octopods_default", host="127.0.0.1", port=port, password=KEY)
        with pytest.raises(errors.OctopodsTLSError) as err:
            send(settings)  # type: ignore[operator]
    text = str(err.value)
    assert "https:// was assumed" in text
    assert f"http://127.0.0.1:{port}" in text


def test_a_tls_error_after_the_send_went_out_is_an_unknown_outcome(tmp_path: Path) -> None:
    """A TLS terminator that takes the whole request, then answers in plain text: ssl's error
    reads like a failed handshake (WRONG_VERSION_NUMBER), but the handshake had ended and the SMS
    may be out. It is an unknown outcome, never "nothing was sent" (which would send it again)."""
    import os
    import socket

    from airflow_provider_octopods.api.decision import Operation, decide

    cert, key = self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []

    def serve() -> None:
        raw, _ = listener.accept()
        with context.wrap_socket(raw, server_side=True) as tls:
            data = b""
            while b"\r\n\r\n" not in data or not data.endswith(REQUEST.body.encode()[-5:] + b'"}'):
                data += tls.recv(65536)
            received.append(data)
            os.write(tls.fileno(), b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")  # past TLS
            threading.Event().wait(0.5)

    threading.Thread(target=serve, daemon=True).start()
    settings = ClientSettings(
        base_url=f"https://127.0.0.1:{listener.getsockname()[1]}", api_key=KEY, ca_bundle=str(cert)
    )
    try:
        with pytest.raises(errors.OctopodsError) as err:
            send_async(settings)
    finally:
        listener.close()
    assert len(received) == 1
    assert not isinstance(err.value, errors.OctopodsTLSError)
    assert decide(Operation.SEND, err.value).maybe_sent
