"""The provider's Airflow plugin: only a listener that tidies send records (no UI, no macros)."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from airflow_provider_octopods import listeners


class OctopodsPlugin(AirflowPlugin):
    """Deletes a task instance's send record when it succeeds (see ``send_record``)."""

    name = "octopods"
    listeners = [listeners]
