"""Apache Airflow provider for the Octopods SMS API."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
