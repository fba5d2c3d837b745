"""DAGs for Airflow's lifecycle in a real deployment: a triggerer restart under a deferred sensor,
a worker killed in the middle of a batch, a batch waiting in the triggerer for rows due later, a
worker lost under a task with deduplicated alerts, and a send refused by the API (for the key scan).

They use ``octopods_slow``: a connection the tests add to the metadata DB, pointing at a sandbox
whose messages take 20 seconds to reach their final status.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_octopods.notifications.octopods import OctopodsNotifier
from airflow_provider_octopods.operators.octopods import OctopodsSendBatchOperator, OctopodsSendSmsOperator
from airflow_provider_octopods.sensors.octopods import OctopodsDeliverySensor

SLOW = "octopods_slow"
ON_CALL = ["+15005550100", "+447700900123"]
FAILED_NUMBER = "+15005550101"  # the sandbox's "failed: not a valid mobile subscriber"

with DAG(
    dag_id="octopods_e2e_triggerer_restart",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
):

    @task
    def hundred() -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = [{"phone": f"+44770090{i:04d}", "n": i} for i in range(98)]
        return [*rows, {"phone": FAILED_NUMBER, "n": 98}, {"phone": FAILED_NUMBER, "n": 99}]

    pending = OctopodsSendBatchOperator(
        task_id="send",
        recipients=hundred(),
        body="Restart check {{ recipient.n }}",
        octopods_conn_id=SLOW,
        rate_limit=50,
    )
    OctopodsDeliverySensor(
        task_id="track",
        message_id=pending.output["message_ids"],  # type: ignore[index]  # the XCom key
        octopods_conn_id=SLOW,
        deferrable=True,
        poke_interval=2,
        timeout=600,
        min_delivered_ratio=0.98,
        fail_fast=False,
    )

with DAG(
    dag_id="octopods_e2e_killed_batch",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=1)},
):
    OctopodsSendBatchOperator(
        task_id="send",
        recipients=[{"phone": f"+44770091{i:04d}", "n": i} for i in range(300)],
        body="Kill check {{ recipient.n }}",
        octopods_conn_id=SLOW,
        rate_limit=20,
        max_in_flight=4,
        max_failure_ratio=0.5,
    )

with DAG(
    dag_id="octopods_e2e_send_times",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
):

    @task(multiple_outputs=True)
    def plan() -> dict[str, Any]:
        """A send window opening at the next minute boundary 45 to 105 s away (in UTC), and rows as
        an upstream query would compute them: two due now in UTC+1 (inside the window there), one
        due in 30 s, and two in UTC (outside the window until it opens)."""
        now = datetime.now(timezone.utc)
        opens = (now + timedelta(seconds=105)).replace(second=0, microsecond=0)
        soon = now + timedelta(seconds=30)
        zones_and_times = [("Etc/GMT-1", now)] * 2 + [("Etc/GMT-1", soon)] + [("Etc/UTC", now)] * 2
        return {
            "window": f"{opens:%H:%M}-{opens + timedelta(hours=3):%H:%M}",
            "opens": opens.isoformat(),
            "rows": [
                {"phone": f"+44770092{n:04d}", "n": n, "tz": tz, "at": at.isoformat()}
                for n, (tz, at) in enumerate(zones_and_times)
            ],
        }

    planned = plan()
    OctopodsSendBatchOperator(
        task_id="send",
        recipients=planned["rows"],
        body="Due check {{ recipient.n }}",
        send_window=planned["window"],
        tz_field="tz",
        send_at_field="at",
        octopods_conn_id=SLOW,
    )

with DAG(
    dag_id="octopods_e2e_worker_lost",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    on_failure_callback=OctopodsNotifier(phones=ON_CALL, dedup_window=60),
):

    @task(on_failure_callback=OctopodsNotifier(phones=ON_CALL, dedup_window=60))
    def hold() -> None:
        """Runs until its worker is killed under it."""
        time.sleep(600)

    hold()

with DAG(
    dag_id="octopods_e2e_refused",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
):
    OctopodsSendSmsOperator(
        task_id="send_with_revoked_key",
        phone="+15005550106",  # the sandbox answers error 5, DEPRECATED_API_KEY
        body="This one is refused",
    )
