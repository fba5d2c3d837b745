"""Use ``OctopodsHook`` from TaskFlow: send an appointment reminder and report its status."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import dag, task


@dag(
    dag_id="example_octopods_taskflow",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"phone": "+15005550100", "name": "Jane", "when": "April 28 at 10:00"},
    tags=["example", "octopods"],
)
def example_octopods_taskflow() -> None:
    @task
    def send_reminder(params: dict[str, Any] | None = None) -> dict[str, Any]:
        from airflow_provider_octopods.hooks.octopods import OctopodsHook

        p = params or {}
        result = OctopodsHook().send_sms(
            p["phone"], f"Hi {p['name']}, your appointment is confirmed for {p['when']}. Reply C to cancel."
        )
        return result.to_dict()  # the phone number in it is masked

    @task
    def report_status(sent: dict[str, Any]) -> str:
        from airflow_provider_octopods.hooks.octopods import OctopodsHook

        if sent["message_id"] is None:
            return "untracked (HubSpot workspace)"
        return OctopodsHook().get_status(sent["message_id"]).status.value

    report_status(send_reminder())  # type: ignore[arg-type]  # TaskFlow passes the XCom value


example_octopods_taskflow()
