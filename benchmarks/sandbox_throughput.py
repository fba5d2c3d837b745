"""How many sends per second the sandbox answers on one core, so it never limits our benchmarks.

    .venv/bin/python benchmarks/sandbox_throughput.py [--sends 20000] [--concurrency 64]

The sandbox runs in its own process pinned to core 0 (no faults, request log off); the load
client runs here, pinned to core 1, first with bare aiohttp (a fast client, to find the server's
ceiling), then with the provider's ``AsyncOctopodsClient`` (aiohttp, plus request building,
answer parsing and the retry loop) and with bare httpx (the async client's former library), at 8
and 64 in flight. Each line prints sends/s, the server's CPU per send and share of its core, and
its capacity on one full core (sends/s divided by that share), next to the 3,000 sends/s target.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._sandbox import sandbox_process

TARGET = 3000
PAYLOAD = {"destination_phone": "+15005550100", "body": "Your appointment is tomorrow at 10:00."}
HEADERS = {"X-Octopods-Auth": "load-test-key"}


async def with_aiohttp(url: str, sends: int, concurrency: int) -> None:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=HEADERS) as session:
        remaining = iter(range(sends))

        async def worker() -> None:
            for _ in remaining:
                async with session.post(f"{url}/api/v1/sms/messages", json=PAYLOAD) as response:
                    assert response.status == 201, response.status
                    await response.read()

        await asyncio.gather(*(worker() for _ in range(concurrency)))


async def with_httpx(url: str, sends: int, concurrency: int) -> None:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(headers=HEADERS, limits=limits) as client:
        remaining = iter(range(sends))

        async def worker() -> None:
            for _ in remaining:
                response = await client.post(f"{url}/api/v1/sms/messages", json=PAYLOAD)
                assert response.status_code == 201, response.status_code

        await asyncio.gather(*(worker() for _ in range(concurrency)))


async def with_provider_client(url: str, sends: int, concurrency: int) -> None:
    from airflow_provider_octopods.api import build_send_request
    from airflow_provider_octopods.api.retry import RetryPolicy
    from airflow_provider_octopods.api.settings import ClientSettings
    from airflow_provider_octopods.clients.aio import AsyncOctopodsClient

    settings = ClientSettings(base_url=url, api_key=HEADERS["X-Octopods-Auth"])
    request = build_send_request(PAYLOAD["destination_phone"], PAYLOAD["body"])
    policy = RetryPolicy(max_attempts=1)  # a failed send stops the measurement
    async with AsyncOctopodsClient(settings, retry_policy=policy, max_connections=concurrency) as client:
        remaining = iter(range(sends))

        async def worker() -> None:
            for _ in remaining:
                await client.send(request)

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def measure(name: str, url: str, pid: int, run: object, sends: int, concurrency: int) -> None:
    server = psutil.Process(pid)
    cpu_before = sum(server.cpu_times()[:2])
    started = time.perf_counter()
    asyncio.run(run(url, sends, concurrency))  # type: ignore[operator]
    elapsed = time.perf_counter() - started
    server_cpu = sum(server.cpu_times()[:2]) - cpu_before
    rate = sends / elapsed
    share = server_cpu / elapsed
    capacity = rate / share if share else float("inf")
    verdict = "meets" if capacity >= TARGET else "BELOW"
    print(
        f"{name:28}{concurrency:>10}{rate:>10,.0f}{server_cpu / sends * 1e6:>14.0f}{share:>12.0%}"
        f"{capacity:>16,.0f}   {verdict} the {TARGET:,}/s target"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sends", type=int, default=20000)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    with sandbox_process() as url:
        pid = _sandbox_pid(url)
        if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(pid, {0})
        print(f"sandbox on one core (pid {pid}), {args.sends:,} sends per line\n")
        print(
            f"{'load client':28}{'in flight':>10}{'sends/s':>10}{'server us/send':>14}{'server core':>12}"
            f"{'server capacity':>16}"
        )
        measure("aiohttp", url, pid, with_aiohttp, args.sends, 64)
        measure("AsyncOctopodsClient", url, pid, with_provider_client, args.sends, 8)
        measure("AsyncOctopodsClient", url, pid, with_provider_client, args.sends, 64)
        measure("httpx (former client)", url, pid, with_httpx, args.sends // 2, 8)
        measure("httpx (former client)", url, pid, with_httpx, args.sends // 2, 64)


def _sandbox_pid(url: str) -> int:
    port = int(url.rsplit(":", 1)[1])
    for conn in psutil.net_connections(kind="tcp"):
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
            return int(conn.pid)
    raise RuntimeError("sandbox process not found")


if __name__ == "__main__":
    main()
