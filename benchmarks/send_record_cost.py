"""What the send record costs a user's loop over ``OctopodsHook.send_sms``, next to the same loop without it.

    .venv/bin/python benchmarks/send_record_cost.py [--sends 100] [--rounds 3]

Runs a TaskFlow task that sends ``--sends`` SMS through the hook, inside real Airflow
(``dag.test()`` on a throwaway SQLite metadata DB) against a sandbox process on 127.0.0.1, once
with the send record (the default) and once with ``OctopodsHook(send_record=False)``, ``--rounds``
times each, alternating. It prints, side by side: milliseconds per send (the task's own time,
median over rounds), metadata DB writes per send by the record (counted at the store), and what
the record leaves in the Variable table after the run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._sandbox import sandbox_process

DAG_FILE = textwrap.dedent(
    """
    from datetime import datetime
    import time

    from airflow.providers.common.compat.sdk import DAG, task


    @task
    def loop(params=None):
        from airflow_provider_octopods.hooks.octopods import OctopodsHook

        hook = OctopodsHook(send_record=params["send_record"])
        started = time.perf_counter()
        for n in range(params["sends"]):
            hook.send_sms(f"+1555{n:07d}", f"Reminder {n}")
        return time.perf_counter() - started


    with DAG(dag_id="send_record_cost", start_date=datetime(2026, 1, 1), schedule=None, params={}):
        loop()
    """
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sends", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="octopods-bench-record-"))
    dags = home / "dags"
    dags.mkdir()
    (dags / "send_record_cost.py").write_text(DAG_FILE)
    from tests.dagrun import load_dag, migrate_db, prepare_environment, run_dag

    prepare_environment(home, dags)
    migrate_db()

    from airflow_provider_octopods import send_record

    writes = {"save": 0, "delete": 0}
    real_save, real_delete = send_record.VariableStore.save, send_record.VariableStore.delete

    def counting_save(self: Any, key: str, value: dict[str, Any], *, description: str) -> None:
        writes["save"] += 1
        real_save(self, key, value, description=description)

    def counting_delete(self: Any, key: str) -> None:
        writes["delete"] += 1
        real_delete(self, key)

    send_record.VariableStore.save = counting_save  # type: ignore[method-assign]
    send_record.VariableStore.delete = counting_delete  # type: ignore[method-assign]

    timings: dict[bool, list[float]] = {True: [], False: []}
    counted: dict[bool, dict[str, int]] = {}
    with sandbox_process() as url:
        os.environ["AIRFLOW_CONN_OCTOPODS_DEFAULT"] = (
            f'{{"conn_type": "octopods", "host": "{url}", "password": "benchmark-key"}}'
        )
        dag = load_dag(dags, "send_record_cost")
        for _ in range(args.rounds):
            for with_record in (True, False):
                writes.update(save=0, delete=0)
                outcome = run_dag(dag, {"send_record": with_record, "sends": args.sends})
                if outcome.state != "success":
                    raise SystemExit(f"the benchmark DAG failed: {outcome.task_states}")
                timings[with_record].append(float(outcome.xcom("loop")))
                counted[with_record] = dict(writes)
    leftovers = _octopods_variables()

    import airflow

    print(f"Airflow {airflow.__version__}, {args.sends} sends per run, median of {args.rounds} runs each")
    print(f"{'':34}{'ms per send':>12}{'DB writes per send':>20}")
    for with_record, label in ((True, "hook loop with send record"), (False, "hook loop, send_record=False")):
        per_send = statistics.median(timings[with_record]) / args.sends * 1000
        total_writes = counted[with_record]["save"] + counted[with_record]["delete"]
        print(f"{label:34}{per_send:>12.2f}{total_writes / args.sends:>20.2f}")
    extra = (statistics.median(timings[True]) - statistics.median(timings[False])) / args.sends * 1000
    print(f"cost of the record: {extra:+.2f} ms per send; Variables left after the runs: {len(leftovers)}")
    return 0


def _octopods_variables() -> list[str]:
    from airflow.models import Variable
    from airflow.utils.session import create_session

    with create_session() as session:
        return [key for (key,) in session.query(Variable.key) if key.startswith("octopods_")]


if __name__ == "__main__":
    sys.exit(main())
