"""Shared by the benchmarks: an Octopods sandbox in its own process, so its CPU is not counted."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def sandbox_process(*args: str) -> Iterator[str]:
    """Start ``octopods-sandbox --port 0 --quiet ARGS`` and yield its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_octopods.sandbox.cli", "--port", "0", "--quiet", *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if " on " not in line:
            raise RuntimeError(f"the sandbox did not start: {line!r}")
        yield line.split(" on ")[1].split()[0]
    finally:
        process.terminate()
        process.wait(10)


def airflow_home() -> None:
    """A throwaway AIRFLOW_HOME, so that importing Airflow touches nothing of the user's."""
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="octopods-bench-"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
