"""Fault soak (issue 12, part 2): a reminder batch against a hostile sandbox, then tracked by the
deferrable trigger, inside real Airflow (``dag.test()`` on a throwaway SQLite DB).

    .venv/bin/python benchmarks/soak.py                   # 10,000 rows, seed 7, run twice
    .venv/bin/python benchmarks/soak.py --rows 2000 --runs 1

Sends meet together: a sandbox rate limit below the batch's (429s), 3 % ``http_503``, 2 %
``reset_before``, 1 % ``reset_after``, 0.5 % ``hang_after`` and 50 ms of jitter (status reads get
the jitter only). Each run starts a new sandbox with the same seed and a new Airflow home, then
prints what the sandbox accepted against the operator's per-row report:

* ``duplicates``: the same text accepted twice for one number (must be 0);
* ``lost``: accepted by the sandbox, but neither accepted nor unknown in the report (must be 0);
* ``unknown``: reported as maybe-sent, against the faults that leave a send's outcome unknown
  (``reset_after``, ``hang_after``: processed; ``reset_before``: not processed, but to the client
  a reset looks the same either way, so it is not re-sent either);
* the peak requests in one second against the sandbox's limit, 429s, wall time.

The faults follow the seed: the n-th request the rate limit lets through meets the same faults in
every run, so two runs with one seed give the same counts whatever the timing.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks._sandbox import sandbox_process  # noqa: E402

KEY = "soak-key-Zr5Tn1Qm"
FAULTS = [
    "http_503:0.03:send",
    "reset_before:0.02:send",
    "reset_after:0.01:send",
    "hang_after:0.005:send",
    "jitter:0.05",
]
UNKNOWN_FAULTS = ("reset_after", "hang_after", "reset_before")
BODY_NUMBER = re.compile(r"^Soak (\d+):")


def sandbox_get(url: str, path: str) -> Any:
    with urllib.request.urlopen(f"{url}/_sandbox/{path}", timeout=60) as answer:  # noqa: S310
        return json.loads(answer.read())


def run_dag_in_child(url: str, rows: int, rate: float, report: Path) -> dict[str, Any]:
    """``dag.test()`` of the soak DAG in a child process with its own Airflow home."""
    home = Path(tempfile.mkdtemp(prefix="octopods-soak-"))
    env = os.environ | {
        "OCTOPODS_SOAK_ROWS": str(rows),
        "OCTOPODS_SOAK_RATE": str(rate),
        "OCTOPODS_SOAK_REPORT": str(report),
        # read_timeout 5 s: a hung answer ends the try quickly and becomes an unknown outcome
        "AIRFLOW_CONN_OCTOPODS_DEFAULT": json.dumps(
            {"conn_type": "octopods", "host": url, "password": KEY, "extra": {"read_timeout": 5}}
        ),
    }
    started = time.monotonic()
    child = subprocess.run(
        [sys.executable, __file__, "--child", str(home)], env=env, capture_output=True, text=True, check=False
    )
    if child.returncode != 0:
        raise RuntimeError(f"the soak DAG run failed:\n{child.stdout[-3000:]}\n{child.stderr[-5000:]}")
    result: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    result["wall"] = time.monotonic() - started
    return result


def child(home: Path) -> None:
    from tests.dagrun import load_dag, migrate_db, prepare_environment, run_dag

    folder = ROOT / "benchmarks" / "dags"
    prepare_environment(home, folder)
    os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
    migrate_db()
    outcome = run_dag(load_dag(folder, "octopods_soak"))
    tracked = outcome.xcom("track") or {}
    print(
        json.dumps(
            {
                "state": outcome.state,
                "tasks": outcome.task_states,
                "report": outcome.xcom("send"),
                "delivered": len(tracked.get("delivered", [])),
                "failed": len(tracked.get("failed", [])),
                "pending": len(tracked.get("pending", [])),
            }
        )
    )


def one_run(rows: int, seed: int, rate: float, limit: float) -> dict[str, Any]:
    args = ["--seed", str(seed), "--rate-limit", str(limit), "--hang-seconds", "8", "--final-after", "1"]
    for fault in FAULTS:
        args += ["--fault", fault]
    report_file = Path(tempfile.mkdtemp(prefix="octopods-soak-report-")) / "report.csv"
    with sandbox_process(*args) as url:
        result = run_dag_in_child(url, rows, rate, report_file)
        stats = sandbox_get(url, "stats")
        messages = sandbox_get(url, "messages")["messages"]

    with report_file.open(newline="") as handle:
        report_rows = list(csv.DictReader(handle))
    by_outcome: dict[str, set[int]] = {}
    for row in report_rows:
        by_outcome.setdefault(row["outcome"], set()).add(int(row["row"]) - 1)  # rows count from 1
    received = [int(match.group(1)) for m in messages if (match := BODY_NUMBER.match(m["body"]))]
    accepted = by_outcome.get("accepted", set()) | by_outcome.get("accepted_earlier", set())
    unknown = by_outcome.get("unknown", set())
    faults = stats.get("faults", {})
    return {
        "state": result["state"],
        "received": len(received),
        "duplicates": len(received) - len(set(received)),
        "lost": len(set(received) - accepted - unknown),
        "reported accepted not received": len(accepted - set(received)),
        "accepted (report)": len(accepted),
        "unknown (report)": len(unknown),
        "unknown faults injected": sum(faults.get(name, 0) for name in UNKNOWN_FAULTS),
        "faults": {name: faults.get(name, 0) for name in ("http_503", *UNKNOWN_FAULTS)},
        "failed (report)": (result["report"] or {}).get("failed", 0),
        "429s": f"{stats['answers'].get('429', 0)} ({stats['answers'].get('429', 0) / stats['sends']:.1%} of sends)",
        "send requests": stats["sends"],
        "peak sends/s (429s incl.)": stats["peak_per_second_by_endpoint"]["send"],
        "peak status reads/s": stats["peak_per_second_by_endpoint"]["status"],
        "peak admitted/s": stats["peak_admitted_per_second"],
        "delivered (tracked)": result["delivered"],
        "wall s": round(result["wall"], 1),
    }


COUNTS = (
    "received",
    "duplicates",
    "lost",
    "accepted (report)",
    "unknown (report)",
    "unknown faults injected",
    "failed (report)",
    "delivered (tracked)",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--rate", type=float, default=300, help="the batch's rate_limit (default 300)")
    parser.add_argument("--limit", type=float, default=250, help="the sandbox's rate limit (default 250)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        child(Path(options.child))
        return

    print(
        f"Fault soak: {options.rows} rows, seed {options.seed}, batch rate {options.rate:g}/s, sandbox limit "
        f"{options.limit:g}/s, faults {' '.join(FAULTS)}"
    )
    runs = [one_run(options.rows, options.seed, options.rate, options.limit) for _ in range(options.runs)]
    names = list(runs[0])
    print(f"{'':30}" + "".join(f"{'run ' + str(i + 1):>22}" for i in range(len(runs))))
    for name in names:
        print(f"{name:30}" + "".join(f"{run[name]!s:>22}" for run in runs))
    same = all(all(run[c] == runs[0][c] for c in COUNTS) for run in runs)
    checks = {
        "0 duplicates": all(r["duplicates"] == 0 for r in runs),
        "0 lost": all(r["lost"] == 0 and r["reported accepted not received"] == 0 for r in runs),
        "unknown = faults that leave it unknown": all(
            r["unknown (report)"] == r["unknown faults injected"] for r in runs
        ),
        "0 failed": all(r["failed (report)"] == 0 for r in runs),
        "every accepted one delivered": all(r["delivered (tracked)"] == r["accepted (report)"] for r in runs),
        "same counts in every run": same,
    }
    for name, held in checks.items():
        print(f"{name}: {'yes' if held else 'NO'}")
    sys.exit(0 if all(checks.values()) else 1)


if __name__ == "__main__":
    main()
