"""A local Octopods SMS API emulator for demos and tests (needs the ``sandbox`` extra: aiohttp).

Start one from Python with :class:`SandboxServer`, from a shell with ``octopods-sandbox``, or in
pytest with the ``octopods_sandbox`` fixture. See the README for its magic phone numbers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_octopods.sandbox.config import SandboxConfig, Variant
from airflow_provider_octopods.sandbox.scenarios import MAGIC_NUMBERS, Scenario

if TYPE_CHECKING:
    from airflow_provider_octopods.sandbox.server import SandboxServer

__all__ = ["MAGIC_NUMBERS", "SandboxConfig", "SandboxServer", "Scenario", "Variant"]


def __getattr__(name: str) -> Any:
    # The server needs aiohttp; importing config or scenarios must not.
    if name == "SandboxServer":
        from airflow_provider_octopods.sandbox.server import SandboxServer

        return SandboxServer
    raise AttributeError(name)
