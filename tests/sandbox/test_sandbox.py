"""The sandbox as a real HTTP server on 127.0.0.1, spoken to with plain requests."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

import pytest
import requests

from airflow_provider_octopods.sandbox import MAGIC_NUMBERS, SandboxServer

KEY = "sandbox-test-key-123"
PATH = "/api/v1/sms/messages"


def send(server: SandboxServer, payload: object, key: str | None = KEY) -> requests.Response:
    headers = {"X-Octopods-Auth": key} if key is not None else {}
    return requests.post(server.url + PATH, json=payload, headers=headers, timeout=5)


def status(server: SandboxServer, message_id: object, key: str = KEY) -> requests.Response:
    return requests.get(f"{server.url}{PATH}/{message_id}", headers={"X-Octopods-Auth": key}, timeout=5)


def test_send_and_progress_current_variant(octopods_sandbox_factory: Callable[..., SandboxServer]) -> None:
    server = octopods_sandbox_factory(sent_after=0.2, final_after=0.4)
    response = send(server, {"destination_phone": "+15551234567", "body": "Hi", "destination_user_name": "Jane"})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"request_id", "message_id", "phone_number"}
    assert body["phone_number"] == "+15551234567"
    message_id = body["message_id"]
    assert status(server, message_id).json()["status"] == "queued"
    time.sleep(0.25)
    sent = status(server, message_id).json()
    assert (sent["status"], sent["delivered_at"]) == ("sent", None)
    assert sent["sent_at"].endswith("Z")
    time.sleep(0.2)
    final = status(server, message_id).json()
    assert final["status"] == "delivered"
    assert final["delivered_at"]
    assert final["failure_reason"] is None
    [message] = server.messages()
    assert (message.phone, message.body, message.options) == ("+15551234567", "Hi", {"destination_user_name": "Jane"})
    assert KEY not in repr(message)
    assert KEY not in str(message.to_dict())


def test_delivery_jitter_is_seeded(octopods_sandbox_factory: Callable[..., SandboxServer]) -> None:
    def finals(seed: int) -> list[float]:
        server = octopods_sandbox_factory(sent_after=0, final_after=1, delivery_jitter=10, seed=seed)
        for _ in range(20):
            send(server, {"destination_phone": "+15551234567", "body": "Hi"})
        return [m.final_after for m in server.messages()]

    first = finals(7)
    assert first == finals(7)
    assert first != finals(8)
    assert all(1 <= f <= 11 for f in first)
    assert max(first) - min(first) > 3


def test_legacy_variant(octopods_sandbox_factory: Callable[..., SandboxServer]) -> None:
    server = octopods_sandbox_factory(variant="legacy", sent_after=0, final_after=0)
    body = send(server, {"destination_phone": "+15551234567", "body": "Hi"}).json()
    assert body["phone_number"] == "15551234567"
    answer = status(server, body["message_id"]).json()
    assert set(answer) == {"message_id", "status", "status_message", "last_updated", "request_id"}
    assert answer["status"] == "DELIVERED"


def test_hubspot_variant(octopods_sandbox_factory: Callable[..., SandboxServer]) -> None:
    server = octopods_sandbox_factory(variant="hubspot")
    assert set(send(server, {"destination_phone": "+15551234567", "body": "Hi"}).json()) == {"request_id"}
    assert len(server.messages()) == 1


@pytest.mark.parametrize(
    ("phone", "final", "reason"),
    [
        ("+15005550100", "delivered", None),
        ("+15005550101", "failed", "not a valid mobile subscriber"),
        ("+15005550102", "undelivered", "out of coverage"),
        ("+15005550103", "sent", None),
    ],
)
def test_magic_numbers_final_statuses(
    octopods_sandbox_factory: Callable[..., SandboxServer], phone: str, final: str, reason: str | None
) -> None:
    server = octopods_sandbox_factory(sent_after=0, final_after=0)
    message_id = send(server, {"destination_phone": phone, "body": "Hi"}).json()["message_id"]
    answer = status(server, message_id).json()
    assert answer["status"] == final
    if reason:
        assert reason in answer["failure_reason"]


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"body": "Hi"}, 1),
        ({"destination_phone": "+15551234567"}, 2),
        ({"destination_phone": "+15551234567", "body": "   "}, 2),
        ({"destination_phone": "15551234567", "body": "Hi"}, 3),
        ({"destination_phone": "+15005550104", "body": "Hi"}, 3),
        ({"destination_phone": "+15005550105", "body": "Hi"}, 4),
        ({"destination_phone": "+15551234567", "body": "Hi", "open_intercom_conversation": "maybe"}, 4),
        ({"destination_phone": "+15551234567", "body": "x" * 1601}, 4),
        ({"destination_phone": "+15005550106", "body": "Hi"}, 5),
    ],
)
def test_error_codes(octopods_sandbox: SandboxServer, payload: dict, code: int) -> None:
    response = send(octopods_sandbox, payload)
    assert response.status_code == 400
    body = response.json()
    assert body["error_code"] == code
    assert body["request_id"]
    assert body["error"]
    assert octopods_sandbox.messages() == []
    assert octopods_sandbox.requests()[-1].error_code == code


@pytest.mark.parametrize("flag", [True, False, "yes", "off", 1, 0])
def test_documented_boolean_spellings_accepted(octopods_sandbox: SandboxServer, flag: object) -> None:
    payload = {"destination_phone": "+15551234567", "body": "Hi", "open_intercom_conversation": flag}
    assert send(octopods_sandbox, payload).status_code == 201


def test_unknown_message_is_error_1(octopods_sandbox: SandboxServer) -> None:
    for message_id in (999, "abc"):
        response = status(octopods_sandbox, message_id)
        assert (response.status_code, response.json()["error_code"]) == (400, 1)


def test_auth(octopods_sandbox_factory: Callable[..., SandboxServer]) -> None:
    open_server = octopods_sandbox_factory()
    assert send(open_server, {"destination_phone": "+15551234567", "body": "Hi"}, key=None).status_code == 401
    assert send(open_server, {"destination_phone": "+15551234567", "body": "Hi"}, key="").status_code == 401
    locked = octopods_sandbox_factory(api_keys=frozenset({"good-key-1"}))
    assert send(locked, {"destination_phone": "+15551234567", "body": "Hi"}, key="other").status_code == 401
    assert send(locked, {"destination_phone": "+15551234567", "body": "Hi"}, key="good-key-1").status_code == 201


def test_inspection_api_and_reset(octopods_sandbox: SandboxServer) -> None:
    for _ in range(2):
        send(octopods_sandbox, {"destination_phone": "+15551234567", "body": "same"})
    listing = requests.get(octopods_sandbox.url + "/_sandbox/messages", timeout=5).json()
    assert (listing["count"], listing["duplicates"]) == (2, 1)
    assert [m["identical_sends"] for m in listing["messages"]] == [2, 2]
    assert {"message_id", "phone", "body", "key_fingerprint", "accepted_at"} <= set(listing["messages"][0])
    assert KEY not in str(listing)
    assert octopods_sandbox.duplicates() == 1
    status(octopods_sandbox, 424242)
    stats = requests.get(octopods_sandbox.url + "/_sandbox/stats", timeout=5).json()
    assert stats == {
        "messages": 2,
        "duplicates": 1,
        "requests": 3,
        "sends": 2,
        "status_reads": 1,
        "answers": {"201": 2, "1": 1},
        "faults": {},
        "peak_requests_per_second": 3,
        "peak_per_second_by_endpoint": {"send": 2, "status": 1},
        "peak_admitted_per_second": 3,
    }
    assert len(octopods_sandbox.sent_to("+15551234567")) == 2
    requests.post(octopods_sandbox.url + "/_sandbox/reset", timeout=5)
    assert octopods_sandbox.messages() == []
    assert octopods_sandbox.requests() == []


def test_connection_helpers_point_at_the_server(octopods_sandbox: SandboxServer) -> None:
    assert octopods_sandbox.url.startswith("http://127.0.0.1:")
    assert f":{octopods_sandbox.port}/http" in octopods_sandbox.connection_uri("k/1")
    assert '"conn_type": "octopods"' in octopods_sandbox.connection_json()


def test_cli_help_explains_options_and_magic_numbers() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_octopods.sandbox.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for text in ("--port", "--variant", "--sent-after", "--final-after", "--api-key", *MAGIC_NUMBERS):
        assert text in result.stdout


def test_cli_serves_and_logs_masked_without_keys() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_octopods.sandbox.cli",
            "--port",
            "0",
            "--final-after",
            "0",
            "--sent-after",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "Octopods sandbox listening on http://127.0.0.1:" in first
        url = first.split(" on ")[1].split()[0]
        response = requests.post(
            url + PATH,
            json={"destination_phone": "+15551234567", "body": "Hi"},
            headers={"X-Octopods-Auth": KEY},
            timeout=5,
        )
        assert response.status_code == 201
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
    assert "POST /api/v1/sms/messages -> 201 to=+1*******567" in output
    assert "5551234567" not in output
    assert KEY not in first + output
    assert "accepted 1 message(s)" in output
    assert "listening on" not in output  # said once, on the first line


def test_the_standalone_server_freezes_what_it_holds_at_once_not_only_after_a_while() -> None:
    """The first freeze, over everything made while starting, comes before any request: a full
    collection of it a few seconds into a client's run stalled the server and its meter. The
    server says where it listens (``then``) only after that freeze, and once."""
    import gc
    import threading

    from airflow_provider_octopods.sandbox.cli import keep_stored_objects_frozen

    stop = threading.Event()
    before = gc.get_freeze_count()
    frozen_when_told: list[int] = []
    worker = threading.Thread(
        target=keep_stored_objects_frozen,
        args=(stop, 3600.0),  # the next one in an hour
        kwargs={"then": lambda: frozen_when_told.append(gc.get_freeze_count())},
    )
    worker.start()
    try:
        deadline = time.monotonic() + 5
        while not frozen_when_told and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        worker.join(5)
        if before == 0:
            gc.unfreeze()
    assert len(frozen_when_told) == 1
    assert frozen_when_told[0] > before
    assert not worker.is_alive()  # stopped during its wait, not after the hour


def test_the_standalone_server_says_where_it_listens_once_frozen_and_tells_it_only_once() -> None:
    """With a short interval, ``then`` still runs once, after the first of several freezes."""
    import gc
    import threading

    from airflow_provider_octopods.sandbox.cli import keep_stored_objects_frozen

    stop = threading.Event()
    before = gc.get_freeze_count()
    told: list[int] = []
    worker = threading.Thread(
        target=keep_stored_objects_frozen, args=(stop, 0.01), kwargs={"then": lambda: told.append(1)}
    )
    worker.start()
    try:
        time.sleep(0.2)  # some twenty rounds
    finally:
        stop.set()
        worker.join(5)
        if before == 0:
            gc.unfreeze()
    assert told == [1]


def test_the_standalone_server_keeps_what_it_stores_out_of_full_collections() -> None:
    """Stored messages are frozen every few seconds: a full collection over thousands of them
    would stall the server and make its peak-rate meter see evenly paced requests as bunched."""
    import gc
    import threading
    import weakref

    from airflow_provider_octopods.sandbox.cli import keep_stored_objects_frozen

    def collected() -> set[int]:  # what the collector walks; frozen objects are not among them
        return {id(o) for o in gc.get_objects()}

    stop = threading.Event()
    stored = [{"message": [n]} for n in range(1000)]  # alive and tracked, as the sandbox's store keeps them

    class Node:
        other: object = None

    garbage = Node()
    garbage.other = garbage  # a cycle: freed only by a collection, kept for good if frozen
    gone = weakref.ref(garbage)
    before = gc.get_freeze_count()
    assert id(stored[0]) in collected()
    del garbage
    worker = threading.Thread(target=keep_stored_objects_frozen, args=(stop, 0.01))
    worker.start()
    try:
        deadline = time.monotonic() + 5
        while gc.get_freeze_count() <= before and time.monotonic() < deadline:
            time.sleep(0.01)  # (not gc.get_objects(): its list would keep the cycle alive meanwhile)
        stop.set()
        worker.join(5)
        walked = collected()
    finally:
        stop.set()
        worker.join(5)
        if before == 0:
            gc.unfreeze()
    assert id(stored[0]) not in walked  # frozen
    assert id(stored[-1]["message"]) not in walked
    assert gone() is None  # collected first, not frozen for good
    assert not worker.is_alive()  # it ends with the server
