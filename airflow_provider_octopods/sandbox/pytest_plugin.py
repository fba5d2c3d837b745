"""pytest fixtures for testing DAGs against a local Octopods sandbox.

Registered automatically (``pytest11`` entry point) when this package is installed:

* ``octopods_sandbox``: a running sandbox (default settings: delivered after 1 s) for one test.
* ``octopods_sandbox_factory``: call it with :class:`SandboxConfig` fields to start more,
  e.g. ``octopods_sandbox_factory(variant="legacy", final_after=0)``.

Both handles offer ``url``, ``connection_json()``, ``connection_uri()``, ``messages()``,
``requests()`` and ``reset()``. To point the default connection at it::

    monkeypatch.setenv("AIRFLOW_CONN_OCTOPODS_DEFAULT", octopods_sandbox.connection_json())
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from airflow_provider_octopods.sandbox.server import SandboxServer


@pytest.fixture
def octopods_sandbox_factory() -> Iterator[Callable[..., SandboxServer]]:
    """Start sandboxes with :class:`~airflow_provider_octopods.sandbox.SandboxConfig` fields,
    ``factory(variant="legacy", final_after=0)``; each is stopped when the test ends."""
    from airflow_provider_octopods.sandbox.config import SandboxConfig
    from airflow_provider_octopods.sandbox.server import SandboxServer

    started: list[SandboxServer] = []

    def start(**config: Any) -> SandboxServer:
        server = SandboxServer(SandboxConfig(**config)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def octopods_sandbox(octopods_sandbox_factory: Callable[..., SandboxServer]) -> SandboxServer:
    """A running sandbox with the default settings (delivered after 1 s), stopped when the test ends."""
    return octopods_sandbox_factory()
