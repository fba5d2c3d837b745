"""How one deferrable trigger tracks 1,000 messages, next to 1,000 classic sensors doing the same.

    .venv/bin/python benchmarks/track_many.py [--messages 1000] [--poll-interval 5] [--spread 30]

Against a sandbox process whose messages are delivered at random times over ``--spread`` seconds
(seeded), it runs, one after the other:

* one ``OctopodsDeliveryTrigger`` for all ids (what a deferrable sensor runs in the triggerer);
* 1,000 ``OctopodsDeliverySensor.poke`` loops, one per id, every poll interval (what 1,000
  reschedule-mode sensors do; each of their pokes is also a task try on a worker).

It prints requests made, the minimum a poller with the same interval needs (each id read once
per interval until final, never after), the absolute minimum (one read per id), peak requests
in flight, CPU seconds of this process (the sandbox runs in another) in all and per status read,
and the time from the last delivery to the verdict.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._sandbox import airflow_home, sandbox_process

KEY = "benchmark-key"


def send_batch(url: str, count: int) -> list[int]:
    session = requests.Session()
    session.headers["X-Octopods-Auth"] = KEY
    return [
        session.post(f"{url}/api/v1/sms/messages", json={"destination_phone": "+15005550100", "body": f"m{n}"}).json()[
            "message_id"
        ]
        for n in range(count)
    ]


def final_times(url: str, ids: list[int]) -> list[float]:
    listing = requests.get(f"{url}/_sandbox/messages", timeout=30).json()["messages"]
    finals = {m["message_id"]: datetime.fromisoformat(m["final_at"]).timestamp() for m in listing}
    return [finals[i] for i in ids]


def status_reads(url: str) -> int:
    # The sandbox's own request log is the ground truth for how many reads reached it.
    return int(requests.get(f"{url}/_sandbox/stats", timeout=30).json()["status_reads"])


def run_trigger(ids: list[int], poll: float, max_in_flight: int) -> dict[str, Any]:
    from unittest import mock

    from airflow_provider_octopods.clients.aio import AsyncOctopodsClient
    from airflow_provider_octopods.triggers.octopods import OctopodsDeliveryTrigger

    class Counting(AsyncOctopodsClient):
        in_flight = peak = count = 0

        async def _once(self, call: Any, booking: Any = None) -> Any:
            Counting.in_flight += 1
            Counting.count += 1
            Counting.peak = max(Counting.peak, Counting.in_flight)
            try:
                return await super()._once(call, booking)
            finally:
                Counting.in_flight -= 1

    trigger = OctopodsDeliveryTrigger(
        message_ids=ids,
        octopods_conn_id="octopods_default",
        poll_interval=poll,
        deadline=time.time() + 600,
        max_in_flight=max_in_flight,
    )

    async def main() -> list[Any]:
        return [event async for event in trigger.run()]

    # A triggerer has run triggers before this one: the first imports (Airflow's connection and
    # metrics modules, aiohttp) are not this trigger's cost. One status read, uncounted.
    async def warm_up() -> None:
        from airflow_provider_octopods.hooks.octopods import OctopodsHook

        async with await OctopodsHook("octopods_default").aget_async_client() as client:
            await client.get_status(ids[0])

    asyncio.run(warm_up())

    cpu, started = time.process_time(), time.time()
    # The trigger's client as the hook makes it (the provider's metrics observer included), counting.
    with mock.patch("airflow_provider_octopods.clients.aio.AsyncOctopodsClient", Counting):
        events = asyncio.run(main())
    return {
        "events": len(events),
        "outcome": events[0].payload["outcome"],
        "requests": Counting.count,
        "peak": Counting.peak,
        "cpu": time.process_time() - cpu,
        "started": started,
        "ended": time.time(),
    }


def run_classic(ids: list[int], poll: float) -> dict[str, Any]:
    from airflow_provider_octopods.sensors.octopods import OctopodsDeliverySensor

    sensors = {i: OctopodsDeliverySensor(task_id=f"track_{i}", message_id=i, poke_interval=poll) for i in ids}
    cpu, started = time.process_time(), time.time()
    pokes = 0
    while sensors:
        round_start = time.monotonic()
        for message_id, sensor in list(sensors.items()):
            pokes += 1
            if sensor.poke({}):  # type: ignore[arg-type]
                del sensors[message_id]
        if sensors:
            time.sleep(max(0.0, poll - (time.monotonic() - round_start)))
    return {"requests": pokes, "peak": 1, "cpu": time.process_time() - cpu, "started": started, "ended": time.time()}


def minimum_reads(finals: list[float], started: float, poll: float) -> int:
    return sum(1 + max(0, math.floor((f - started) / poll)) for f in finals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--poll-interval", type=float, default=5.0)
    parser.add_argument("--spread", type=float, default=30.0, help="deliveries happen over this many seconds")
    parser.add_argument("--max-in-flight", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    airflow_home()
    import logging

    logging.disable(logging.WARNING)

    sandbox_args = ["--sent-after", "0.5", "--final-after", "1", "--delivery-jitter", str(args.spread - 1)]
    with sandbox_process(*sandbox_args, "--seed", str(args.seed)) as url:
        os.environ["AIRFLOW_CONN_OCTOPODS_DEFAULT"] = json.dumps(
            {"conn_type": "octopods", "host": url, "password": KEY}
        )
        rows = {}
        for name, runner in (("1 deferrable trigger", run_trigger), (f"{args.messages} classic sensors", run_classic)):
            ids = send_batch(url, args.messages)
            before = status_reads(url)
            if runner is run_trigger:
                result = run_trigger(ids, args.poll_interval, args.max_in_flight)
            else:
                result = run_classic(ids, args.poll_interval)
            finals = final_times(url, ids)
            result["sandbox_reads"] = status_reads(url) - before
            result["minimum"] = minimum_reads(finals, result["started"], args.poll_interval)
            result["latency"] = result["ended"] - max(finals)
            rows[name] = result

    print(
        f"\n{args.messages} messages delivered at random over {args.spread:g} s, poll interval "
        f"{args.poll_interval:g} s, absolute minimum {args.messages} reads (one per id)\n"
    )
    columns = (
        ("status reads", 14),
        ("min @ interval", 16),
        ("ratio", 8),
        ("peak in flight", 16),
        ("CPU s", 8),
        ("CPU ms/read", 13),
    )
    print(f"{'':26}" + "".join(f"{title:>{width}}" for title, width in columns) + f"{'last delivery -> verdict':>26}")
    for name, r in rows.items():
        print(
            f"{name:26}{r['sandbox_reads']:>14}{r['minimum']:>16}{r['sandbox_reads'] / r['minimum']:>8.2f}"
            f"{r['peak']:>16}{r['cpu']:>8.2f}{r['cpu'] / r['sandbox_reads'] * 1000:>13.2f}{r['latency']:>25.2f}s"
        )
    trigger = rows["1 deferrable trigger"]
    print(f"\ntrigger: {trigger['events']} event ({trigger['outcome']}), no worker slot held while waiting;")
    print(
        f"classic: every read above is one sensor poke, i.e. one task try on a worker ({args.messages} task instances)."
    )


if __name__ == "__main__":
    main()
