"""``octopods-sandbox``: run the local Octopods API emulator in the foreground, or around one command (``run``)."""

from __future__ import annotations

import argparse
import gc
import logging
import signal
import sys
import threading
from typing import TextIO

from airflow_provider_octopods.sandbox.config import SandboxConfig, Variant
from airflow_provider_octopods.sandbox.faults import Fault
from airflow_provider_octopods.sandbox.runner import DEFAULT_CONN_ID, run_command
from airflow_provider_octopods.sandbox.scenarios import MAGIC_NUMBERS

FREEZE_SECONDS = 2.0


def _magic_numbers() -> str:
    return "Magic numbers:\n" + "\n".join(f"  {phone}  {s.description}" for phone, s in MAGIC_NUMBERS.items())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="octopods-sandbox",
        description="A local emulator of the Octopods SMS API (POST /api/v1/sms/messages, "
        "GET /api/v1/sms/messages/{id}). Sends nothing; keeps every message for inspection at "
        "GET /_sandbox/messages. Point an 'octopods' connection's host at the URL it prints.",
        epilog=f"{_magic_numbers()}\n\nFor the length of one command, with its connection set up for it:\n"
        "  octopods-sandbox run [options] [--conn-id ID] -- COMMAND ...  (see octopods-sandbox run --help)",
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
        "(AIRFLOW_CONN_<ID>, JSON, throwaway key) in its environment, then print what the sandbox "
        "received (messages with masked phones, duplicates, requests) and exit with COMMAND's exit code. "
        "Example: octopods-sandbox run -- airflow dags test my_dag",
        epilog=_magic_numbers(),
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
        print(
            f"Octopods sandbox listening on {server.url} (variant {config.variant.value}, accepts {keys})", flush=True
        )
        keep_stored_objects_frozen(stop)
        print(f"Octopods sandbox stopping; it accepted {len(server.messages())} message(s)", flush=True)
    return 0


def keep_stored_objects_frozen(stop: threading.Event, every: float = FREEZE_SECONDS) -> None:
    """Until ``stop`` is set, collect and then freeze (``gc.freeze()``) the objects alive every few
    seconds, so that the messages and requests the sandbox keeps are out of the collector's reach.

    Otherwise, with thousands of them stored, a full collection stalls the server,
    after which it handles the requests queued meanwhile at once, and its peak-rate meter counts
    as bunched requests that arrived evenly paced. A collection now only walks the objects of the
    last few seconds. Only the standalone server does this; a sandbox embedded in a test process
    leaves that process's collector alone.
    """
    while not stop.wait(every):
        gc.collect()
        gc.freeze()


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
