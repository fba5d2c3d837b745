"""The sandbox's aiohttp application: the two API endpoints plus an inspection API."""

from __future__ import annotations

import json
import logging
import random
import re
import uuid
from typing import Any

from aiohttp import web

from airflow_provider_octopods.api.masking import mask_phone
from airflow_provider_octopods.api.protocol import AUTH_HEADER, MESSAGES_PATH
from airflow_provider_octopods.api.validation import MAX_BODY_CHARS
from airflow_provider_octopods.sandbox.config import SandboxConfig
from airflow_provider_octopods.sandbox.responses import error_body, send_body, status_body
from airflow_provider_octopods.sandbox.scenarios import scenario_for
from airflow_provider_octopods.sandbox.store import MessageStore, RequestRecord, progress

log = logging.getLogger("octopods.sandbox")

INSPECT_PREFIX = "/_sandbox"
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_BOOL_WORDS = {"true", "false", "1", "0", "yes", "no", "on", "off"}

STORE_KEY: web.AppKey[MessageStore] = web.AppKey("store", MessageStore)
CONFIG_KEY: web.AppKey[SandboxConfig] = web.AppKey("config", SandboxConfig)


def new_store(config: SandboxConfig) -> MessageStore:
    """A message store whose messages progress on ``config``'s schedule (seeded jitter)."""
    rng = random.Random(config.seed)

    def timing() -> tuple[float, float]:
        return config.sent_after, config.final_after + rng.uniform(0, config.delivery_jitter)

    return MessageStore(config.first_message_id, timing=timing)


def create_app(config: SandboxConfig, store: MessageStore | None = None) -> web.Application:
    """An aiohttp app emulating the Octopods SMS API as ``config`` describes."""
    app = web.Application()
    app[CONFIG_KEY] = config
    app[STORE_KEY] = store or new_store(config)
    app.router.add_post(MESSAGES_PATH, _send)
    app.router.add_get(MESSAGES_PATH + "/{message_id}", _status)
    app.router.add_get(INSPECT_PREFIX + "/health", _health)
    app.router.add_get(INSPECT_PREFIX + "/messages", _list_messages)
    app.router.add_get(INSPECT_PREFIX + "/stats", _stats)
    app.router.add_post(INSPECT_PREFIX + "/reset", _reset)
    return app


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
    return _answer(request, web.json_response(send_body(config.variant, message), status=201), phone)


async def _status(request: web.Request) -> web.Response:
    config, store = request.app[CONFIG_KEY], request.app[STORE_KEY]
    request_id = str(uuid.uuid4())
    _, refusal = _authenticate(request, config, request_id)
    if refusal is not None:
        return _answer(request, refusal, None)
    raw_id = request.match_info["message_id"]
    message = store.get(int(raw_id)) if raw_id.isascii() and raw_id.isdigit() else None
    if message is None:
        return _answer(request, _error(1, "Message not found.", request_id), None)
    state = progress(message)
    return _answer(request, web.json_response(status_body(config.variant, message, state, request_id)), message.phone)


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "variant": request.app[CONFIG_KEY].variant.value})


async def _list_messages(request: web.Request) -> web.Response:
    store = request.app[STORE_KEY]
    messages = [m.to_dict() for m in store.messages()]
    return web.json_response({"count": len(messages), "duplicates": store.duplicates(), "messages": messages})


async def _stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STORE_KEY].stats())


async def _reset(request: web.Request) -> web.Response:
    request.app[STORE_KEY].reset()
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


def _answer(request: web.Request, response: web.Response, phone: object) -> web.Response:
    """Record and log the request in one line (phone masked, key never) and return ``response``."""
    code = _error_code(response)
    request.app[STORE_KEY].record_request(RequestRecord(request.method, request.path, response.status, code))
    if log.isEnabledFor(logging.INFO):
        log.info(
            "%s %s -> %d%s%s",
            request.method,
            request.path,
            response.status,
            f" error_code={code}" if code is not None else "",
            f" to={mask_phone(phone)}" if phone is not None else "",
        )
    return response


def _error_code(response: web.Response) -> int | None:
    if response.status < 400 or response.body is None:
        return None
    try:
        payload: Any = json.loads(bytes(response.body))  # type: ignore[arg-type]
    except ValueError:
        return None
    code = payload.get("error_code") if isinstance(payload, dict) else None
    return code if isinstance(code, int) else None
