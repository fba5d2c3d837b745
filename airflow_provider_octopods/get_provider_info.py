"""Provider metadata, found by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_provider_octopods import __version__


def get_provider_info() -> dict[str, Any]:
    """What ``airflow providers list`` and the connection form learn about this package."""
    return {
        "package-name": "airflow-provider-octopods",
        "name": "Octopods",
        "description": "Send SMS through the Octopods SMS API, track delivery and alert on failures.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Octopods",
                "external-doc-url": "https://app.octopods.io",
                "tags": ["service"],
            }
        ],
        "hook-class-names": ["airflow_provider_octopods.hooks.octopods.OctopodsHook"],
        "connection-types": [
            {
                "connection-type": "octopods",
                "hook-class-name": "airflow_provider_octopods.hooks.octopods.OctopodsHook",
                "hook-name": "Octopods SMS",
                "conn-fields": {
                    "connect_timeout": {
                        "label": "Connect timeout (s)",
                        "schema": {"type": ["number", "null"], "default": 5},
                    },
                    "read_timeout": {
                        "label": "Read timeout (s)",
                        "schema": {"type": ["number", "null"], "default": 30},
                    },
                    "default_region": {
                        "label": "Default region for national numbers",
                        "schema": {"type": ["string", "null"]},
                        "description": "Two-letter code such as US or GB, for numbers without +country code.",
                    },
                    "ca_bundle": {
                        "label": "CA bundle (path)",
                        "schema": {"type": ["string", "null"]},
                        "description": "PEM file of CA certificates to trust (a private CA or TLS proxy). "
                        "Verification itself cannot be switched off.",
                    },
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["login", "schema", "port"],
                    "relabeling": {"host": "API base URL", "password": "API key"},
                    "placeholders": {
                        "host": "https://app.octopods.io",
                        "password": "channel API key from the Octopods dashboard",
                    },
                },
            }
        ],
        "operators": [
            {
                "integration-name": "Octopods",
                "python-modules": [
                    "airflow_provider_octopods.operators.octopods",
                    "airflow_provider_octopods.batch.operator",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": "Octopods",
                "python-modules": ["airflow_provider_octopods.sensors.octopods"],
            }
        ],
        "triggers": [
            {
                "integration-name": "Octopods",
                "python-modules": ["airflow_provider_octopods.triggers.octopods"],
            }
        ],
        "notifications": ["airflow_provider_octopods.notifications.octopods.OctopodsNotifier"],
        "hooks": [
            {
                "integration-name": "Octopods",
                "python-modules": ["airflow_provider_octopods.hooks.octopods"],
            }
        ],
    }
