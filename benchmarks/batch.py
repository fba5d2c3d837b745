"""Reminder batches: the batch operator against the ways users send without it, on one sandbox.

    .venv/bin/python benchmarks/batch.py                    # everything below
    .venv/bin/python benchmarks/batch.py --only throughput  # or: paced, scale, record-size

* ``throughput``: no rate limit, no latency, printed side by side: (a) a loop over
  ``OctopodsHook.send_sms``, (b) the same loop over Airflow's ``HttpHook``, (c) the batch operator
  end to end (validation, per-row Jinja, the send record in a real Airflow metadata DB, the
  report), (d) the local limit: bare aiohttp posting the same payloads at 64 in flight. (c) and
  (d) run ``--runs`` times each (5), alternating, and print their medians and this process's
  CPU per message; (c)/(d) is the median of the runs' ratios.
* ``paced``: 100 ms server latency and ``rate_limit`` 1, 10 and 100 (``--rates``), each sending
  for about ``--paced-seconds`` (60): sustained msg/s against the limit, and the sandbox's peak
  requests in any one-second window.
* ``scale``: 100,000 rows: a dry run's wall time, and the process's memory growth over a dry run
  and over a real send of all of them.
* ``record-size``: the send record of 10,000 and 100,000 rows: Variables, size, writes, bytes.

The sandbox runs in its own process (``benchmarks/_sandbox.py``); Airflow gets a throwaway home.
``throughput``, ``paced`` and ``scale`` first run a 50-row batch (a real send and a dry run, against the same
sandbox, whose counters are then reset), as a worker has done before a task's ``execute``: so
that neither the first imports of Airflow, aiohttp and the Task SDK nor their memory are
counted as the batch's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from functools import partial
from pathlib import Path
from statistics import median
from types import SimpleNamespace
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._sandbox import airflow_home, sandbox_process

KEY = "bench-key-Pq7Wx2"
BODY = "Hi {{ recipient.name }}, your appointment is tomorrow at {{ recipient.time }}."


def rows(n: int) -> list[dict[str, str]]:
    return [{"phone": f"+4477009{i % 100_000:05d}", "name": f"Patient {i}", "time": "10:00"} for i in range(n)]


def texts(n: int) -> list[tuple[str, str]]:
    return [(r["phone"], f"Hi {r['name']}, your appointment is tomorrow at {r['time']}.") for r in rows(n)]


def use_sandbox(url: str) -> None:
    os.environ["AIRFLOW_CONN_OCTOPODS_DEFAULT"] = json.dumps({"conn_type": "octopods", "host": url, "password": KEY})
    os.environ["AIRFLOW_CONN_OCTOPODS_HTTP"] = json.dumps({"conn_type": "http", "host": url})


def context(run: str) -> dict[str, Any]:
    ti = SimpleNamespace(dag_id="bench", run_id=run, task_id="remind", map_index=-1, try_number=1)
    ti.xcom_push = lambda key, value: None  # type: ignore[attr-defined]
    return {"ti": ti, "task_instance": ti, "ds": "2026-11-25"}


def hook_loop(n: int) -> float:
    from airflow_provider_octopods.hooks.octopods import OctopodsHook

    hook = OctopodsHook()
    started = time.perf_counter()
    for phone, body in texts(n):
        hook.send_sms(phone, body)
    return n / (time.perf_counter() - started)


def http_hook_loop(n: int) -> float:
    from airflow.providers.http.hooks.http import HttpHook

    hook = HttpHook(method="POST", http_conn_id="octopods_http")
    started = time.perf_counter()
    for phone, body in texts(n):
        hook.run(
            "/api/v1/sms/messages",
            json={"destination_phone": phone, "body": body},
            headers={"X-Octopods-Auth": KEY},
        )
    return n / (time.perf_counter() - started)


def operator(n: int | list[dict[str, str]], run: str, **kwargs: Any) -> tuple[float, dict[str, Any]]:
    from airflow_provider_octopods.operators.octopods import OctopodsSendBatchOperator

    recipients = rows(n) if isinstance(n, int) else n
    op = OctopodsSendBatchOperator(
        task_id="remind", recipients=recipients, body=BODY, max_in_flight=64, chunk_size=500, **kwargs
    )
    n = len(recipients)
    started = time.perf_counter()
    report = op.execute(context(run))  # type: ignore[arg-type]
    return n / (time.perf_counter() - started), report


async def bare_aiohttp(url: str, n: int, in_flight: int = 64) -> float:
    import aiohttp

    payloads = [json.dumps({"destination_phone": p, "body": b}).encode() for p, b in texts(n)]
    headers = {"X-Octopods-Auth": KEY, "Content-Type": "application/json"}
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=in_flight)) as session:
        work = iter(payloads)

        async def worker() -> None:
            for payload in work:
                async with session.post(f"{url}/api/v1/sms/messages", data=payload, headers=headers) as answer:
                    await answer.read()

        await asyncio.gather(*(worker() for _ in range(in_flight)))
    return n / (time.perf_counter() - started)


def timed(run: Any, n: int) -> tuple[float, float]:
    """What ``run()`` returns (msg/s), and this process's CPU per message in µs while it ran."""
    cpu = time.process_time()
    rate = run()
    return rate, (time.process_time() - cpu) / n * 1e6


def sandbox_stats(url: str) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(f"{url}/_sandbox/stats") as answer:  # noqa: S310
        stats: dict[str, Any] = json.loads(answer.read())
    return stats


def reset(url: str) -> None:
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{url}/_sandbox/reset", method="POST")).read()  # noqa: S310


def warm_up(url: str) -> None:
    """Load what a worker has loaded before ``execute`` (Airflow, the Task SDK, aiohttp...)."""
    operator(50, "warm-up")
    operator(50, "warm-up-dry", dry_run=True)
    reset(url)


def batch_run(n: int, run_id: str) -> float:
    """(c): the batch operator sends ``n`` messages as task run ``run_id``; its msg/s."""
    rate, report = operator(n, run_id)
    assert report["accepted"] == n, report
    return rate


def aiohttp_run(url: str, n: int) -> float:
    """(d): bare aiohttp posts ``n`` messages; its msg/s."""
    return asyncio.run(bare_aiohttp(url, n))


def throughput(n: int, runs: int) -> None:
    print(f"\n== throughput: {n:,} messages, no rate limit, no latency ==")
    with sandbox_process("--sent-after", "0", "--final-after", "0") as url:
        use_sandbox(url)
        warm_up(url)  # (d) runs with aiohttp loaded by (c): (c) gets the same
        small = min(n, 2000)
        loops = {
            "(a) loop over OctopodsHook.send_sms": hook_loop(small),
            "(b) loop over Airflow's HttpHook": http_hook_loop(small),
        }
        c_name, d_name = "(c) OctopodsSendBatchOperator end to end", "(d) bare aiohttp, 64 in flight"
        rates: dict[str, list[float]] = {c_name: [], d_name: []}
        cpu: dict[str, list[float]] = {c_name: [], d_name: []}
        for run in range(runs):  # alternating, so that a slower stretch of the machine hits both
            for name, work in (
                (c_name, partial(batch_run, n, f"throughput-{run}")),
                (d_name, partial(aiohttp_run, url, n)),
            ):
                rate, used = timed(work, n)
                rates[name].append(rate)
                cpu[name].append(used)
        for name, value in loops.items():
            print(f"  {name:<42} {value:>8,.0f} msg/s")
        for name in (c_name, d_name):
            print(f"  {name:<42} {median(rates[name]):>8,.0f} msg/s  {median(cpu[name]):>5.0f} µs CPU a message")
        ratios = [c / d for c, d in zip(rates[c_name], rates[d_name], strict=True)]
        each = ", ".join(f"{ratio:.0%}" for ratio in ratios)
        print(f"  (c)/(d) = {median(ratios):.0%}: median of {runs} alternating runs ({each}); goal >= 50%")
        b = loops["(b) loop over Airflow's HttpHook"]
        print(f"  (c)/(b) = {median(rates[c_name]) / b:.1f}x (goal >= 4x)")
        print(f"  loops (a), (b) over {small:,} messages; (c), (d) over {n:,}, medians of {runs} runs each")


def paced(rates: list[float], seconds: float) -> None:
    for limit in rates:
        n = max(20, int(limit * seconds))
        print(f"\n== paced: {n:,} messages, 100 ms server latency, rate_limit={limit:g} ==")
        with sandbox_process("--sent-after", "0", "--final-after", "0", "--fault", "latency:0.1") as url:
            use_sandbox(url)
            warm_up(url)
            rate, report = operator(n, f"paced-{limit:g}", rate_limit=limit)
            stats = sandbox_stats(url)
            print(
                f"  sustained {rate:.2f} msg/s = {rate / limit:.1%} of the limit (goal >= 98 %); "
                f"accepted {report['accepted']:,}"
            )
            print(
                f"  peak requests in any one-second window at the API: {stats['peak_requests_per_second']} "
                f"(limit {limit:g})"
            )


def scale(n: int) -> None:
    print(f"\n== scale: {n:,} rows ==")
    process = psutil.Process()
    with sandbox_process("--sent-after", "0", "--final-after", "0") as url:
        use_sandbox(url)
        warm_up(url)
        baseline = process.memory_info().rss
        recipients = rows(n)  # the upstream task's data, in memory before the batch starts
        before = process.memory_info().rss
        started = time.perf_counter()
        _, report = operator(recipients, "scale-dry", dry_run=True)
        dry = time.perf_counter() - started
        after_dry, peak_dry = process.memory_info().rss, _peak_rss()
        print(f"  dry run: {dry:.1f} s (goal < 10 s), {report['planned']:,} planned, {report['segments']:,} segments")
        print(
            f"  memory growth over the dry run: {(after_dry - before) / 2**20:.0f} MB after it, "
            f"{(peak_dry - before) / 2**20:.0f} MB at its peak"
        )
        rate, report = operator(recipients, "scale-send", max_xcom_ids=0)
        after, peak = process.memory_info().rss, _peak_rss()
        print(f"  real send: {rate:,.0f} msg/s, {report['accepted']:,} accepted")
        print(
            f"  memory growth from the start to after the send: {(after - before) / 2**20:.0f} MB, at the peak "
            f"{(peak - before) / 2**20:.0f} MB (goal <= 100 MB; the {n:,} input rows, "
            f"{(before - baseline) / 2**20:.0f} MB, are the upstream task's and not counted)"
        )
        sizes(recipients, url)


def sizes(recipients: list[dict[str, str]], url: str) -> None:
    """What a real send of ``recipients`` leaves with the defaults and a campaign: its XCom, its
    CSV report and the campaign's record (the task instance's record is measured by ``record-size``)."""
    import tempfile

    from airflow_provider_octopods.send_record import MemoryStore
    from airflow_provider_octopods.send_record.campaign import CAMPAIGN_PREFIX

    reset(url)
    store = MemoryStore()
    with tempfile.TemporaryDirectory() as folder:
        csv = Path(folder) / "report.csv"
        _, report = operator(recipients, "scale-sizes", campaign="scale", record_store=store, report_path=str(csv))
        csv_bytes = csv.stat().st_size
    n = len(recipients)
    xcom = len(json.dumps(report, separators=(",", ":")))
    campaign = {k: v for k, v in store.values.items() if k.startswith(CAMPAIGN_PREFIX)}
    campaign_bytes = sum(len(json.dumps(v, separators=(",", ":"))) for v in campaign.values())
    print(f"  with a campaign and a report_path (max_xcom_ids at its default), {report['accepted']:,} accepted:")
    ids = report["message_ids"]
    held = f"{len(ids):,} message ids" if ids is not None else "no message ids: more than max_xcom_ids"
    print(f"    XCom return value: {xcom / 1e6:.2f} MB ({held})")
    print(f"    CSV report: {csv_bytes / 1e6:.1f} MB ({csv_bytes / n:.0f} B a row)")
    print(
        f"    campaign record: {len(campaign)} Variables, {campaign_bytes / 1e6:.1f} MB "
        f"({campaign_bytes / n:.0f} B a recipient)"
    )


def _peak_rss() -> int:
    """The most memory this process has held so far (Linux: kilobytes)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def record_size() -> None:
    from airflow_provider_octopods.api.models import SendRequest, SendResult
    from airflow_provider_octopods.api.segments import Encoding
    from airflow_provider_octopods.send_record import MemoryStore, SendGuard, TaskKey

    class Sizing(MemoryStore):
        written = 0

        def save(self, key: str, value: dict[str, Any], *, description: str) -> None:
            self.written += len(json.dumps(value, separators=(",", ":")))
            super().save(key, value, description=description)

    print("\n== the send record of a batch (max_in_flight=16, chunk_size=200: the defaults) ==")
    in_flight, chunk = 16, 200
    for n in (10_000, 100_000):
        store = Sizing()
        record = SendGuard(TaskKey("d", "r", "t"), try_number=1, store=store)
        requests = [SendRequest(phone, body) for phone, body in texts(n)]
        slots = [(record.slot(r, 1), r) for r in requests]
        started = time.process_time()
        intended = answered = 0
        for sent in range(n + 1):  # as BatchSender writes it: intents topped up to twice max_in_flight
            if sent < n and intended - sent <= in_flight // 2:
                ahead = slots[intended : intended + 2 * in_flight - (intended - sent)]
                record.begin(ahead, named_by_content=True)  # as the batch operator writes them
                intended += len(ahead)
            if sent - answered >= chunk or sent == n:  # results: one write per chunk_size answers
                record.settle(
                    [
                        (slot, SendResult("3f2b8c1e-7d4a-4b7e", 4_829_174 + i, r.phone, 1, Encoding.GSM7))
                        for i, (slot, r) in enumerate(slots[answered:sent], start=answered)
                    ],
                    (),
                )
                answered = sent
        cpu = time.process_time() - started
        size = sum(len(json.dumps(v, separators=(",", ":"))) for v in store.values.values())
        print(
            f"  {n:>7,} rows: {len(store.values)} Variables, {size / 1e6:.1f} MB ({size / n:.0f} B a row), "
            f"{store.writes:,} writes, {store.written / 1e6:.0f} MB written, {cpu:.1f} s CPU"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["throughput", "paced", "scale", "record-size"])
    parser.add_argument("--messages", type=int, default=10_000, help="throughput run size")
    parser.add_argument("--runs", type=int, default=5, help="throughput runs of (c) and of (d), alternating")
    parser.add_argument("--rates", default="1,10,100", help="paced runs' rate limits, comma-separated")
    parser.add_argument("--paced-seconds", type=float, default=60.0, help="how long each paced run sends")
    parser.add_argument("--rows", type=int, default=100_000, help="scale run size")
    args = parser.parse_args()
    airflow_home()
    from tests.dagrun import migrate_db

    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{os.environ['AIRFLOW_HOME']}/airflow.db"
    migrate_db()
    if args.only in (None, "record-size"):
        record_size()
    if args.only in (None, "throughput"):
        throughput(args.messages, args.runs)
    if args.only in (None, "paced"):
        paced([float(rate) for rate in args.rates.split(",")], args.paced_seconds)
    if args.only in (None, "scale"):
        scale(args.rows)


if __name__ == "__main__":
    main()
