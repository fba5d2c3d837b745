"""The fault soak's DAG (``benchmarks/soak.py``): rows -> batch -> deferrable delivery wait.

Sizes and paths come from the environment the soak sets, so that the file parses anywhere.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_octopods.operators.octopods import OctopodsSendBatchOperator
from airflow_provider_octopods.sensors.octopods import OctopodsDeliverySensor

ROWS = int(os.environ.get("OCTOPODS_SOAK_ROWS", "10000"))

with DAG(dag_id="octopods_soak", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):

    @task
    def recipients() -> list[dict[str, Any]]:
        return [{"phone": f"+4477009{n:05d}", "n": n} for n in range(ROWS)]

    batch = OctopodsSendBatchOperator(
        task_id="send",
        recipients=recipients(),
        body="Soak {{ recipient.n }}: your delivery arrives tomorrow.",
        rate_limit=float(os.environ.get("OCTOPODS_SOAK_RATE", "300")),
        max_in_flight=32,
        max_failure_ratio=0.1,
        report_path=os.environ.get("OCTOPODS_SOAK_REPORT", "/tmp/octopods_soak_report.csv"),  # noqa: S108
    )
    OctopodsDeliverySensor(
        task_id="track",
        message_id=batch.output["message_ids"],  # type: ignore[index]  # the XCom key
        deferrable=True,
        poke_interval=2,
        timeout=1800,
        max_in_flight=32,
        reads_per_second=200,
    )
