"""The sandbox's aiohttp application: the two API endpoints, its hostile side, an inspection API."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import socket
import struct
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from airflow_provider_octopods.api.masking import mask_phone
from airflow_provider_octopods.api.protocol import AUTH_HEADER, MESSAGES_PATH
from airflow_provider_octopods.api.validation import MAX_BODY_CHARS
from airflow_provider_octopods.sandbox.config import SandboxConfig
from airflow_provider_octopods.sandbox.faults import Fault, FaultPlan
from airflow_provider_octopods.sandbox.ratelimit import PeakMeter, RateLimiter
from airflow_provider_octopods.sandbox.responses import error_body, gateway_page, send_body, status_body
from airflow_provider_octopods.sandbox.scenarios import scenario_for
from airflow_provider_octopods.sandbox.store import MessageStore, RequestRecord, key_fingerprint, progress

log = logging.getLogger("octopods.sandbox")

INSPECT_PREFIX = "/_sandbox"
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_BOOL_WORDS = {"true", "false", "1", "0", "yes", "no", "on", "off"}


@dataclass
class Hostility:
    """The sandbox's bad-day machinery: faults, rate limits and the peak-rate meter."""

    config: SandboxConfig
    plan: FaultPlan = field(init=False)
    limiter: RateLimiter = field(init=False)
    meter: PeakMeter = field(default_factory=PeakMeter)
    endpoint_meters: dict[str, PeakMeter] = field(default_factory=lambda: {"send": PeakMeter(), "status": PeakMeter()})
    admitted_meter: PeakMeter = field(default_factory=PeakMeter)  # requests the rate limit let through
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.plan = FaultPlan(self.config.faults, self.config.seed)
        self.limiter = RateLimiter(self.config.rate_limit)

    def peaks(self) -> dict[str, Any]:
        """The most requests in any one-second window: all, by endpoint, and those admitted."""
        return {
            "peak_requests_per_second": self.meter.peak,
            "peak_per_second_by_endpoint": {name: meter.peak for name, meter in self.endpoint_meters.items()},
            "peak_admitted_per_second": self.admitted_meter.peak,
        }

    def reset(self) -> None:
        self.plan.reset()
        self.limiter.reset()
        for meter in (self.meter, self.admitted_meter, *self.endpoint_meters.values()):
            meter.reset()
        self.started = time.monotonic()


STORE_KEY: web.AppKey[MessageStore] = web.AppKey("store", MessageStore)
CONFIG_KEY: web.AppKey[SandboxConfig] = web.AppKey("config", SandboxConfig)
HOSTILITY_KEY: web.AppKey[Hostility] = web.AppKey("hostility", Hostility)


def new_store(config: SandboxConfig) -> MessageStore:
    """A message store whose messages progress on ``config``'s schedule (seeded jitter)."""
    rng = random.Random(config.seed)

    def timing() -> tuple[float, float, float]:
        return config.unknown_for, config.sent_after, config.final_after + rng.uniform(0, config.delivery_jitter)

    return MessageStore(config.first_message_id, timing=timing)


def create_app(
    config: SandboxConfig, store: MessageStore | None = None, hostility: Hostility | None = None
) -> web.Application:
    """An aiohttp app emulating the Octopods SMS API as ``config`` describes."""
    app = web.Application(middlewares=[_hostile])
    app[CONFIG_KEY] = config
    app[STORE_KEY] = store or new_store(config)
    app[HOSTILITY_KEY] = hostility or Hostility(config)
    app.router.add_post(MESSAGES_PATH, _send)
    app.router.add_get(MESSAGES_PATH + "/{message_id}", _status)
    app.router.add_get(INSPECT_PREFIX + "/health", _health)
    app.router.add_get(INSPECT_PREFIX + "/messages", _list_messages)
    app.router.add_get(INSPECT_PREFIX + "/stats", _stats)
    app.router.add_post(INSPECT_PREFIX + "/reset", _reset)
    return app


@web.middleware
async def _hostile(request: web.Request, handler: Any) -> web.StreamResponse:
    """Rate limits and faults around the API endpoints; inspection endpoints are left alone."""
    if not request.path.startswith(MESSAGES_PATH):
        return await handler(request)
    hostility = request.app[HOSTILITY_KEY]
    endpoint = "send" if request.method == "POST" else "status"
    hostility.meter.hit()
    hostility.endpoint_meters[endpoint].hit()
    key = request.headers.get(AUTH_HEADER, "").strip()
    wait = hostility.limiter.admit(key_fingerprint(key)) if key else None
    if wait is not None:
        response = web.json_response(
            {"request_id": str(uuid.uuid4()), "error": "Too many requests."},
            status=429,
            headers={"Retry-After": RateLimiter.retry_after_header(wait)},
        )
        return _answer(request, response, None)
    # Decided after the rate limit, so that the n-th admitted request meets the same faults in
    # every run with the same seed, however many 429s the timing produced.
    hostility.admitted_meter.hit()
    decision = hostility.plan.decide(endpoint, time.monotonic() - hostility.started)
    if decision.delay:
        await asyncio.sleep(decision.delay)
    fault = decision.before
    if fault is Fault.RESET_BEFORE:
        return _reset_connection(request, fault)
    if fault in (Fault.HTTP_500, Fault.HTTP_502, Fault.HTTP_503):
        status = int(fault.value.split("_")[1])
        page = web.Response(status=status, text=gateway_page(status), content_type="text/html")
        return _answer(request, page, None, fault)
    if fault is Fault.ROTATE_KEY:
        refused = web.json_response(
            error_body(5, "The API key has been rotated or revoked.", str(uuid.uuid4())), status=400
        )
        return _answer(request, refused, None, fault)

    response = await handler(request)
    fault = decision.after
    if fault is Fault.RESET_AFTER:
        return _reset_connection(request, fault)
    if fault is Fault.HANG_AFTER:
        _mark_fault(request, fault)
        await asyncio.sleep(request.app[CONFIG_KEY].hang_seconds)
        return response
    if fault in (Fault.HTTP_500_AFTER, Fault.HTTP_502_AFTER):
        _mark_fault(request, fault)
        status = int(fault.value.split("_")[1])
        return web.Response(status=status, text=gateway_page(status), content_type="text/html")
    if fault is Fault.MALFORMED and isinstance(response, web.Response) and response.body is not None:
        _mark_fault(request, fault)
        body = bytes(response.body)  # type: ignore[arg-type]
        return web.Response(status=response.status, body=body[: len(body) // 2], content_type="application/json")
    return response


def _reset_connection(request: web.Request, fault: Fault) -> web.StreamResponse:
    """Drop the connection without an answer (TCP reset), as a crashing proxy would."""
    if fault is Fault.RESET_BEFORE:
        request.app[STORE_KEY].record_request(RequestRecord(request.method, request.path, 0, None, fault.value))
    else:
        _mark_fault(request, fault)
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    raise asyncio.CancelledError


def _mark_fault(request: web.Request, fault: Fault) -> None:
    """Note on the request's record (made by the handler) that a fault followed it."""
    request.app[STORE_KEY].mark_last_fault(request.method, request.path, fault.value)


async def _send(request: web.Request) -> web.Response:
    config, store = request.app[CONFIG_KEY], request.app[STORE_KEY]
    request_id = str(uuid.uuid4())
    api_key, refusal = _authenticate(request, config, request_id)
    if refusal is not None:
        return _answer(request, refusal, None)
    try:
        payload = await request.json()
    except (ValueError, UnicodeDecodeError):
        payload = None
    if not isinstance(payload, dict):
        return _answer(request, _error(4, "The payload must be a JSON object.", request_id), None)

    phone = payload.get("destination_phone")
    body = payload.get("body")
    if phone is None or phone == "":
        return _answer(request, _error(1, "destination_phone is missing.", request_id), None)
    if not isinstance(body, str) or not body.strip():
        return _answer(request, _error(2, "Message body is empty.", request_id), phone)
    if not isinstance(phone, str) or not _E164.match(phone):
        return _answer(request, _error(3, "Invalid Phone number.", request_id), phone)
    if len(body) > MAX_BODY_CHARS:
        return _answer(request, _error(4, f"Message body exceeds {MAX_BODY_CHARS} characters.", request_id), phone)
    flag = payload.get("open_intercom_conversation")
    if not _valid_bool(flag):
        return _answer(request, _error(4, "Invalid value for open_intercom_conversation.", request_id), phone)

    scenario = scenario_for(phone)
    if scenario.error_code is not None:
        return _answer(request, _error(scenario.error_code, scenario.error_text or "", request_id), phone)
    options = {
        k: payload[k]
        for k in ("destination_user_name", "open_intercom_conversation", "intercom_teammate_id")
        if k in payload
    }
    message = store.accept(
        request_id=request_id, phone=phone, body=body, api_key=api_key, scenario=scenario, options=options
    )
    return _answer(request, web.json_response(send_body(config, message), status=201), phone)


async def _status(request: web.Request) -> web.Response:
    config, store = request.app[CONFIG_KEY], request.app[STORE_KEY]
    request_id = str(uuid.uuid4())
    api_key, refusal = _authenticate(request, config, request_id)
    if refusal is not None:
        return _answer(request, refusal, None)
    raw_id = request.match_info["message_id"]
    message = store.get(int(raw_id)) if raw_id.isascii() and raw_id.isdigit() else None
    if message is not None and config.scoped_keys and message.key_fingerprint != key_fingerprint(api_key):
        message = None  # another channel's message: the real API does not reveal it
    if message is None:
        return _answer(request, _error(1, "Message not found.", request_id), None)
    state = progress(message)
    return _answer(request, web.json_response(status_body(config.variant, message, state, request_id)), message.phone)


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "variant": request.app[CONFIG_KEY].variant.value})


async def _list_messages(request: web.Request) -> web.Response:
    store = request.app[STORE_KEY]
    accepted = store.messages()
    identical = Counter((m.phone, m.body) for m in accepted)
    messages = [m.to_dict() | {"identical_sends": identical[(m.phone, m.body)]} for m in accepted]
    return web.json_response({"count": len(messages), "duplicates": store.duplicates(), "messages": messages})


async def _stats(request: web.Request) -> web.Response:
    stats = request.app[STORE_KEY].stats()
    stats.update(request.app[HOSTILITY_KEY].peaks())
    return web.json_response(stats)


async def _reset(request: web.Request) -> web.Response:
    request.app[STORE_KEY].reset()
    request.app[HOSTILITY_KEY].reset()
    return web.json_response({"status": "reset"})


def _authenticate(request: web.Request, config: SandboxConfig, request_id: str) -> tuple[str, web.Response | None]:
    key = request.headers.get(AUTH_HEADER, "").strip()
    if not key:
        return "", _plain_error(401, f"Missing {AUTH_HEADER} header.", request_id)
    if config.api_keys is not None and key not in config.api_keys:
        return "", _plain_error(401, "Invalid API key.", request_id)
    return key, None


def _valid_bool(value: object) -> bool:
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, int):
        return value in (0, 1)
    return isinstance(value, str) and value.strip().lower() in _BOOL_WORDS


def _error(code: int, text: str, request_id: str) -> web.Response:
    return web.json_response(error_body(code, text, request_id), status=400)


def _plain_error(status: int, text: str, request_id: str) -> web.Response:
    return web.json_response({"request_id": request_id, "error": text}, status=status)


def _answer(request: web.Request, response: web.Response, phone: object, fault: Fault | None = None) -> web.Response:
    """Record and log the request in one line (phone masked, key never) and return ``response``."""
    code = _error_code(response)
    record = RequestRecord(request.method, request.path, response.status, code, fault.value if fault else None)
    request.app[STORE_KEY].record_request(record)
    if log.isEnabledFor(logging.INFO):
        log.info(
            "%s %s -> %d%s%s%s",
            request.method,
            request.path,
            response.status,
            f" error_code={code}" if code is not None else "",
            f" to={mask_phone(phone)}" if phone is not None else "",
            f" fault={fault.value}" if fault else "",
        )
    return response


def _error_code(response: web.Response) -> int | None:
    if response.status < 400 or response.body is None or response.content_type != "application/json":
        return None
    try:
        payload: Any = json.loads(bytes(response.body))  # type: ignore[arg-type]
    except ValueError:
        return None
    code = payload.get("error_code") if isinstance(payload, dict) else None
    return code if isinstance(code, int) else None
