"""A local Octopods SMS API emulator for demos and tests (an aiohttp application; aiohttp is a
dependency of the provider, no extra needed).

Start one from Python with :class:`SandboxServer`, from a shell with ``octopods-sandbox``, or in
pytest with the ``octopods_sandbox`` fixture. Its magic phone numbers (``MAGIC_NUMBERS``) and
faults are listed in the docs' testing page (``docs/testing.rst``).
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
