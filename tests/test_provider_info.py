"""The package is found the way Airflow finds providers: through its entry point."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from importlib.metadata import entry_points, version

from airflow_provider_octopods import __version__


def test_entry_point_loads_provider_info() -> None:
    [ep] = [
        ep for ep in entry_points(group="apache_airflow_provider") if ep.value.startswith("airflow_provider_octopods")
    ]
    info = ep.load()()
    assert info["package-name"] == "airflow-provider-octopods"
    assert info["versions"] == [__version__] == [version("airflow-provider-octopods")]
    [conn] = info["connection-types"]
    assert conn["connection-type"] == "octopods"
    module, _, cls = conn["hook-class-name"].rpartition(".")
    assert getattr(importlib.import_module(module), cls).conn_type == "octopods"
    assert conn["ui-field-behaviour"]["relabeling"]["password"] == "API key"
    assert set(conn["conn-fields"]) == {"connect_timeout", "read_timeout", "default_region", "ca_bundle"}
    for section in ("hooks", "operators", "sensors", "triggers"):
        for module in info[section][0]["python-modules"]:
            importlib.import_module(module)


def test_providers_manager_registers_package_and_connection_type() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert manager.providers["airflow-provider-octopods"].version == __version__
    hook = manager.hooks["octopods"]
    assert hook is not None
    assert hook.hook_class_name == "airflow_provider_octopods.hooks.octopods.OctopodsHook"
    assert hook.connection_id_attribute_name == "octopods_conn_id"


def test_airflow_cli_lists_the_provider() -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "list", "-o", "plain"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "airflow-provider-octopods" in listed.stdout
    hooks = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "hooks", "-o", "plain"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "octopods" in hooks.stdout


def test_parsing_modules_stays_light() -> None:
    code = (
        "import sys; import airflow_provider_octopods.operators.octopods, airflow_provider_octopods.sensors.octopods;"
        "heavy = [m for m in ('requests', 'phonenumbers', 'aiohttp') if m in sys.modules]; print(heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = result.stdout.strip().splitlines()[-1]
    assert "phonenumbers" not in loaded
    assert "aiohttp" not in loaded


def test_notifier_is_listed() -> None:
    from airflow_provider_octopods.get_provider_info import get_provider_info

    [notifier] = get_provider_info()["notifications"]
    module, _, name = notifier.rpartition(".")
    assert getattr(importlib.import_module(module), name).__name__ == "OctopodsNotifier"


def test_deferrable_defaults_follow_operators_default_deferrable() -> None:
    code = (
        "from airflow_provider_octopods.sensors.octopods import OctopodsDeliverySensor as S;"
        "from airflow_provider_octopods.operators.octopods import OctopodsSendSmsOperator as O;"
        "print(S(task_id='s', message_id=1).deferrable, O(task_id='o', phone='+15551234567', body='x').deferrable)"
    )
    for setting, expected in (("True", "True True"), ("False", "False False")):
        env = dict(os.environ, AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE=setting)
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        assert result.stdout.strip().splitlines()[-1] == expected
