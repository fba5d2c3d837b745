"""``octopods-sandbox``: run the local Octopods API emulator in the foreground, or around one command
(``run``), and print what a sandbox received (``messages``)."""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from airflow_provider_octopods.api.masking import mask_phone
from airflow_provider_octopods.sandbox.config import SandboxConfig, Variant
from airflow_provider_octopods.sandbox.faults import Fault
from airflow_provider_octopods.sandbox.runner import (
    BODY_PREVIEW_CHARS,
    DEFAULT_CONN_ID,
    LISTING_PATH,
    SANDBOX_URL_ENV,
    SUMMARY_MESSAGES,
    InspectionError,
    base_url,
    fetch_listing,
    message_lines,
    messages_in,
    read_listing,
    run_command,
    status_counts,
)
from airflow_provider_octopods.sandbox.scenarios import MAGIC_NUMBERS

FREEZE_SECONDS = 2.0
INSPECTION_FAILED = 1
_PHONE_SEPARATORS = re.compile(r"[\s().\-]")
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")


def _magic_numbers() -> str:
    return "Magic numbers:\n" + "\n".join(f"  {phone}  {s.description}" for phone, s in MAGIC_NUMBERS.items())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="octopods-sandbox",
        description="A local emulator of the Octopods SMS API (POST /api/v1/sms/messages, "
        "GET /api/v1/sms/messages/{id}). Sends nothing; keeps every message for inspection at "
        "GET /_sandbox/messages. Point an 'octopods' connection's host at the URL it prints.",
        epilog=f"{_magic_numbers()}\n\nFor the length of one command, with its connection set up for it:\n"
        "  octopods-sandbox run [options] [--conn-id ID] -- COMMAND ...  (see octopods-sandbox run --help)\n"
        "What a running sandbox received, one message a line:\n"
        "  octopods-sandbox messages --url URL [--phone P] [--full] [--json]  (see octopods-sandbox messages --help)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_sandbox_options(parser, default_port=8080)
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    return parser


def build_run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="octopods-sandbox run",
        usage="octopods-sandbox run [options] [--conn-id ID] -- COMMAND [ARG ...]",
        description="Start a sandbox on a free port, run COMMAND with an Airflow connection to it "
        f"(AIRFLOW_CONN_<ID>, JSON, throwaway key) and its URL ({SANDBOX_URL_ENV}) in its environment, "
        "then print what the sandbox received and exit with COMMAND's exit code. "
        "Example: octopods-sandbox run -- airflow dags test my_dag",
        epilog="When COMMAND ends, the report (on stderr) gives how many messages are in each status, the\n"
        f"first {SUMMARY_MESSAGES} messages (phones masked, bodies cut at {BODY_PREVIEW_CHARS} characters), "
        "duplicated phone-and-body\npairs and the requests by answer. The sandbox stops then: all its messages are "
        "saved, with\nwhole bodies, to a JSON file in the temporary directory, which the report names. Read it "
        "with\n  octopods-sandbox messages --from FILE [--phone P] [--full] [--json]\n"
        f"While COMMAND runs, 'octopods-sandbox messages' in it reads the sandbox at ${SANDBOX_URL_ENV}.\n\n"
        + _magic_numbers(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_sandbox_options(parser, default_port=0)
    parser.add_argument(
        "--conn-id",
        default=DEFAULT_CONN_ID,
        help=f"the connection id the command uses (default: {DEFAULT_CONN_ID})",
    )
    parser.add_argument("--quiet", action="store_true", help="do not log each request (the log goes to stderr)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command to run, after --")
    return parser


def build_messages_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="octopods-sandbox messages",
        description=f"Print the messages a running sandbox received (it reads GET URL{LISTING_PATH}), one a\n"
        f"line: id, phone (masked), status now, and body, cut at {BODY_PREVIEW_CHARS} characters (a cut body "
        "ends with '…'\nand its length). Or print those that 'octopods-sandbox run' saved when its sandbox "
        "stopped\n(--from FILE).",
        epilog="Examples:\n"
        "  octopods-sandbox messages --url http://127.0.0.1:8080 --phone +15005550101 --full\n"
        "  octopods-sandbox messages --from /tmp/octopods-sandbox-messages-1a2b3c.json --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--url",
        help="the sandbox's URL, as it printed it when it started (default: $"
        f"{SANDBOX_URL_ENV}, which 'octopods-sandbox run' sets for its command)",
    )
    source.add_argument(
        "--from",
        dest="from_file",
        type=Path,
        metavar="FILE",
        help="read the messages from FILE instead: the file 'octopods-sandbox run' names when it ends, "
        f"or a saved answer of GET {LISTING_PATH}",
    )
    parser.add_argument(
        "--phone",
        metavar="P",
        help="only the messages to this number, in E.164 form (+15005550100; spaces, dots, dashes and "
        "brackets are ignored)",
    )
    parser.add_argument("--full", action="store_true", help="print whole bodies")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print a JSON list of the messages as the sandbox gives them: whole bodies, phones unmasked",
    )
    return parser


def add_sandbox_options(parser: argparse.ArgumentParser, *, default_port: int) -> None:
    """The options that describe the sandbox itself (everything but --quiet)."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument(
        "--port",
        type=int,
        default=default_port,
        help=f"port to listen on; 0 picks a free one (default: {default_port})",
    )
    parser.add_argument(
        "--variant",
        choices=[v.value for v in Variant],
        default=Variant.CURRENT.value,
        help="response shapes: 'current' (lower-case status, failure_reason), 'legacy' (upper-case "
        "DELIVERED, status_message, phone without +), 'hubspot' (send returns request_id only)",
    )
    parser.add_argument(
        "--sent-after", type=float, default=0.5, help="seconds a message stays queued before 'sent' (default: 0.5)"
    )
    parser.add_argument(
        "--final-after",
        type=float,
        default=1.0,
        help="seconds until a message reaches its final status, e.g. 'delivered' (default: 1.0)",
    )
    parser.add_argument(
        "--delivery-jitter",
        type=float,
        default=0.0,
        help="spread final statuses over this many more seconds, at random (default: 0)",
    )
    parser.add_argument("--seed", type=int, help="seed for the random choices, for reproducible runs")
    parser.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help="accept only this key (repeatable); by default any non-empty key is accepted",
    )
    parser.add_argument("--channel-message-id", action="store_true", help="add channel_message_id to send responses")
    parser.add_argument(
        "--phone-without-plus",
        dest="plus_in_phone",
        action="store_false",
        default=None,
        help="echo phone_number without '+' in send responses (the legacy variant does by default)",
    )
    parser.add_argument(
        "--unknown-for",
        type=float,
        default=0.0,
        help="seconds a new message reports 'unknown' before 'queued' (default: 0)",
    )
    parser.add_argument(
        "--unscoped-keys",
        dest="scoped_keys",
        action="store_false",
        help="let any key read any message's status (by default, only the key that sent it can)",
    )
    parser.add_argument(
        "--rate-limit",
        type=float,
        metavar="PER_SECOND",
        help="requests per second allowed per key; over it: 429 with Retry-After (default: no limit)",
    )
    parser.add_argument(
        "--fault",
        action="append",
        dest="faults",
        default=[],
        metavar="NAME:WHEN[:ENDPOINT]",
        help="inject a fault, repeatable. WHEN is a probability (reset_after:0.05) or a schedule of request "
        "numbers (http_503:@1,2:send); latency, jitter and rotate_key take seconds (latency:0.2). Names: "
        + ", ".join(f.value for f in Fault),
    )
    parser.add_argument(
        "--hang-seconds",
        type=float,
        default=30.0,
        help="how long a hang_after fault holds a request without answer (default: 30)",
    )


def sandbox_config(args: argparse.Namespace) -> SandboxConfig:
    """The :class:`SandboxConfig` the parsed options describe (ValueError if they are inconsistent)."""
    return SandboxConfig(
        variant=Variant(args.variant),
        sent_after=args.sent_after,
        final_after=args.final_after,
        delivery_jitter=args.delivery_jitter,
        seed=args.seed,
        channel_message_id=args.channel_message_id,
        plus_in_phone=args.plus_in_phone,
        unknown_for=args.unknown_for,
        scoped_keys=args.scoped_keys,
        rate_limit=args.rate_limit,
        faults=tuple(args.faults),
        hang_seconds=args.hang_seconds,
        api_keys=frozenset(args.api_keys) if args.api_keys else None,
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["run"]:
        return run_main(argv[1:])
    if argv[:1] == ["messages"]:
        return messages_main(argv[1:])
    args = build_parser().parse_args(argv)
    config = _prepared(args, log_format="%(asctime)s %(message)s", log_stream=sys.stdout)
    if config is None:
        return 2
    from airflow_provider_octopods.sandbox.server import SandboxServer

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with SandboxServer(config, host=args.host, port=args.port) as server:
        keys = "any non-empty key" if config.api_keys is None else f"{len(config.api_keys)} configured key(s)"
        keep_stored_objects_frozen(
            stop,
            then=lambda: print(
                f"Octopods sandbox listening on {server.url} (variant {config.variant.value}, accepts {keys})",
                flush=True,
            ),
        )
        print(f"Octopods sandbox stopping; it accepted {len(server.messages())} message(s)", flush=True)
    return 0


def keep_stored_objects_frozen(
    stop: threading.Event, every: float = FREEZE_SECONDS, *, then: Callable[[], None] | None = None
) -> None:
    """At once, then every few seconds until ``stop`` is set, collect and then freeze
    (``gc.freeze()``) the objects alive, so that what the sandbox keeps is out of the collector's
    reach: what it made while starting (modules, the web application) and the messages and
    requests it stores.

    Otherwise a full collection walks them all and stalls the server, after which it handles the
    requests queued meanwhile at once, and its peak-rate meter counts as bunched requests that
    arrived evenly paced. A collection now only walks the objects of the last few seconds; the
    first, over everything made while starting, comes before the first request rather than a few
    seconds into a client's run. Only the standalone server does this; a sandbox embedded in a test
    process leaves that process's collector alone.

    :param then: called once, right after the first freeze: the standalone server prints its URL
        there, so that a client waiting for that line sends nothing before that freeze.
    """
    while True:
        gc.collect()
        gc.freeze()
        if then is not None:
            then()
            then = None
        if stop.wait(every):
            return


def _prepared(args: argparse.Namespace, *, log_format: str, log_stream: TextIO) -> SandboxConfig | None:
    """The sandbox configuration from ``args`` with logging set up, or None after saying why not."""
    try:
        config = sandbox_config(args)
    except ValueError as err:
        print(f"octopods-sandbox: {err}", file=sys.stderr)
        return None
    if not _server_importable():
        return None
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format=log_format, stream=log_stream)
    return config


def run_main(argv: list[str]) -> int:
    """``octopods-sandbox run [options] -- COMMAND ...``"""
    parser = build_run_parser()
    if "--" in argv:
        split = argv.index("--")
        args = parser.parse_args(argv[:split])
        command = argv[split + 1 :]
    else:
        args = parser.parse_args(argv)
        command = args.command
    if args.command and command is not args.command:
        parser.error(f"unrecognized arguments before --: {' '.join(args.command)}")
    if not command:
        parser.error("no command given: octopods-sandbox run [options] -- COMMAND [ARG ...]")
    if not args.conn_id.strip():
        parser.error("--conn-id must not be empty")
    config = _prepared(args, log_format="%(asctime)s octopods-sandbox %(message)s", log_stream=sys.stderr)
    if config is None:
        return 2
    return run_command(config, command, host=args.host, port=args.port, conn_id=args.conn_id.strip())


def messages_main(argv: list[str]) -> int:
    """``octopods-sandbox messages [--url URL | --from FILE] [--phone P] [--full] [--json]``"""
    parser = build_messages_parser()
    args = parser.parse_args(argv)
    phone = None
    if args.phone is not None:
        phone = e164(args.phone)
        if phone is None:
            parser.error("--phone must be a number in E.164 form: '+', country code, number (+15005550100)")
    try:
        if args.from_file is not None:
            source = str(args.from_file)
            document = read_listing(args.from_file)
        else:
            url = args.url or os.environ.get(SANDBOX_URL_ENV, "")
            if not url.strip():
                parser.error(
                    "no sandbox URL: give --url URL (the URL the sandbox printed when it started), "
                    "or --from FILE (what 'octopods-sandbox run' saved)"
                )
            source = base_url(url)
            document = fetch_listing(source)
        received = messages_in(document, source)
    except InspectionError as err:
        print(f"octopods-sandbox messages: {err}", file=sys.stderr)
        return INSPECTION_FAILED
    shown = [m for m in received if phone is None or e164(str(m.get("phone", ""))) == phone]
    if args.json:
        lines = [json.dumps(shown, indent=2)]
    else:
        to_phone = f" to {mask_phone(phone)}, of {len(received)}" if phone else ""
        counts = f": {status_counts(shown)}" if shown else "."
        lines = [f"{len(shown)} message(s){to_phone}, from {source}{counts}", *message_lines(shown, full=args.full)]
    return _print_lines(lines)


def e164(number: str) -> str | None:
    """``number`` as ``+<digits>`` once spaces, dots, dashes and brackets are dropped; None when
    that is not an E.164 number."""
    compact = _PHONE_SEPARATORS.sub("", number)
    return compact if _E164.fullmatch(compact) else None


def _print_lines(lines: list[str]) -> int:
    """Print ``lines`` to stdout; a reader that stops early (``| head``) is not an error."""
    try:
        for line in lines:
            print(line)
        sys.stdout.flush()
    except BrokenPipeError:
        # Python would report the failed flush at exit; point stdout at nothing instead.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _server_importable() -> bool:
    try:
        import airflow_provider_octopods.sandbox.server  # noqa: F401
    except ImportError as err:
        print(
            f"octopods-sandbox needs the 'sandbox' extra ({err}): pip install 'airflow-provider-octopods[sandbox]'",
            file=sys.stderr,
        )
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
