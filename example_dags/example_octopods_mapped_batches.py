"""A day's reminders in chunks: one mapped batch per chunk, one chunk at a time on the channel.

``chunks`` stands for the upstream query: it splits the day's rows into lists of ``chunk_size``
rows (100,000 for a million a day: about 100 MB of worker memory per chunk; the demo's 25 rows
make one chunk unless you trigger it with a smaller one, ``--conf '{"chunk_size": 10}'``). Each
chunk is a task instance of its own, with its own send record and its own CSV report; the
``campaign`` keeps a recipient from getting two reminders the same day, across chunks, retries
and re-triggered runs.

The pool lets one chunk at a time use the channel, at its full rate. Create it once (the same
pool as ``example_octopods_channel_pool``):

    airflow pools set octopods_main_channel 1 "one Octopods batch at a time on the main channel"
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_octopods.operators.octopods import OctopodsSendBatchOperator

CHUNK_SIZE = 100_000  # rows per mapped batch
CHANNEL_POOL = "octopods_main_channel"
CHANNEL_LIMIT = 50  # the channel's requests per second, from the Octopods dashboard
REPORTS = Path(tempfile.gettempdir()) / "octopods-reports"  # a shared path or an object store in production

with DAG(
    dag_id="example_octopods_mapped_batches",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"chunk_size": CHUNK_SIZE, "report_dir": str(REPORTS)},
    tags=["example", "octopods"],
):

    @task(show_return_value_in_logs=False)  # its log would print every row, phone numbers and all
    def chunks(params: dict[str, Any] | None = None) -> list[list[dict[str, str]]]:
        rows = [{"phone": f"+447700908{n:03d}", "name": f"Patient {n}", "time": "10:00"} for n in range(25)]
        size = int(params["chunk_size"]) if params else CHUNK_SIZE
        return [rows[start : start + size] for start in range(0, len(rows), size)]

    OctopodsSendBatchOperator.partial(
        task_id="remind",
        body="Hi {{ recipient.name }}, see you tomorrow at {{ recipient.time }}.",
        rate_limit=CHANNEL_LIMIT,
        pool=CHANNEL_POOL,  # one slot: one chunk at a time on the channel
        campaign="reminders-{{ ds }}",  # one SMS per recipient and day, across chunks, runs and re-runs
        report_path="{{ params.report_dir }}/{{ ds }}/reminders-{{ ti.map_index }}.csv",  # one per chunk
    ).expand(recipients=chunks())
