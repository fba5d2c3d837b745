"""Run the sandbox on a real socket: in a background thread (tests, demo) or in the foreground (CLI)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from typing import Any
from urllib.parse import quote

from aiohttp import web

from airflow_provider_octopods.sandbox.app import Hostility, create_app, new_store
from airflow_provider_octopods.sandbox.config import SandboxConfig
from airflow_provider_octopods.sandbox.store import AcceptedMessage, RequestRecord

DEFAULT_TEST_KEY = "sandbox-key"


class SandboxServer:
    """An Octopods sandbox listening on ``host:port`` (port 0: a free one is picked).

    Use as a context manager, or call :meth:`start` and :meth:`stop`. While running, it
    records every accepted message (:meth:`messages`) and every API request (:meth:`requests`).

    :param config: how the sandbox behaves (default: ``SandboxConfig()``, delivered after 1 s).
    :param host: the address to listen on.
    :param port: the port to listen on; 0 picks a free one (read it from :attr:`port` or :attr:`url`).
    """

    def __init__(self, config: SandboxConfig | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config or SandboxConfig()
        self.host = host
        self.store = new_store(self.config)
        self.hostility = Hostility(self.config)
        self._requested_port = port
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port it listens on; raises ``RuntimeError`` before :meth:`start`."""
        if self._port is None:
            raise RuntimeError("the sandbox is not running")
        return self._port

    @property
    def url(self) -> str:
        """The base URL to put in an ``octopods`` connection's host field."""
        return f"http://{self.host}:{self.port}"

    def connection_json(self, api_key: str = DEFAULT_TEST_KEY) -> str:
        """An ``AIRFLOW_CONN_<ID>`` value (JSON) pointing at this sandbox."""
        return json.dumps({"conn_type": "octopods", "host": self.url, "password": api_key})

    def connection_uri(self, api_key: str = DEFAULT_TEST_KEY) -> str:
        """The same connection as an Airflow URI."""
        return f"octopods://:{quote(api_key, safe='')}@{self.host}:{self.port}/http"

    # Lifecycle
    def start(self) -> SandboxServer:
        """Start serving in a background thread; returns the server, once it accepts requests."""
        sock = bind_socket(self.host, self._requested_port)
        self._port = sock.getsockname()[1]
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self._runner = loop.run_until_complete(
                    _start_site(create_app(self.config, self.store, self.hostility), sock)
                )
            except BaseException as err:  # reported to the starting thread
                failure.append(err)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            pending = asyncio.all_tasks(loop)  # e.g. requests held by a hang fault: end them now
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, name=f"octopods-sandbox-{self._port}", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise RuntimeError(f"the sandbox could not start: {failure[0]}") from failure[0]
        return self

    def stop(self) -> None:
        """Stop serving and end the requests still held (by a ``hang_after`` fault, say)."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop = self._thread = self._runner = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # Inspection
    def messages(self) -> list[AcceptedMessage]:
        """Every message accepted since start (or the last reset), in order."""
        return self.store.messages()

    def requests(self) -> list[RequestRecord]:
        """Every request to the API endpoints, with the status it got."""
        return self.store.requests()

    def sent_to(self, phone: str) -> list[AcceptedMessage]:
        """The accepted messages sent to ``phone`` (E.164), in order."""
        return [m for m in self.messages() if m.phone == phone]

    def duplicates(self) -> int:
        """How many accepted messages repeat an earlier one's phone and body."""
        return self.store.duplicates()

    def stats(self) -> dict[str, Any]:
        """Counts by kind and answer, faults injected, and the peak requests in any second."""
        return self.store.stats() | self.hostility.peaks()

    def reset(self) -> None:
        """Forget every message and request so far; ids and the fault plan start again (as ``POST /_sandbox/reset``)."""
        self.store.reset()
        self.hostility.reset()


def bind_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(512)
    sock.setblocking(False)
    return sock


async def _start_site(app: web.Application, sock: socket.socket) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner
