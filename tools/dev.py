#!/usr/bin/env python3
"""The project's two commands, runnable on a machine with nothing but Python >= 3.10.

    python3 tools/dev.py demo    # run the example DAG (local sandbox, or the real API if configured)
                                 # --airflow 2: on Airflow 2.11; --keep: keep its throwaway Airflow home
    python3 tools/dev.py test    # ruff, the docs build, mypy and pytest on Airflow 3.x and on Airflow 2.11

Each builds its environment from uv.lock first: uv itself is installed into .dev/uv with pip,
then ``uv sync --locked`` creates .venv (Airflow 3) and .venv-af2 (Airflow 2.11).
Uses only the standard library, so it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UV_VERSION = "0.13.9"
UV_HOME = ROOT / ".dev" / "uv"
ENVIRONMENTS = {
    # name: (virtualenv folder, uv sync arguments selecting the Airflow line)
    "3": (ROOT / ".venv", []),
    "2": (ROOT / ".venv-af2", ["--no-default-groups", "--group", "dev", "--group", "airflow2"]),
}


# Built on Airflow 3 only (autodoc imports the package, hence Airflow), where ruff runs.
DOCS_BUILD = ["-W", "--keep-going", "-n", "-E", "-q", "-b", "html", "docs", str(ROOT / ".dev" / "docs-html")]

QUIET = False  # the demo's first line of output must be its own


def say(message: str) -> None:
    if not QUIET:
        print(f"[dev] {message}", flush=True)


def run(cmd: list[str], *, env: dict[str, str] | None = None, check: bool = True, quiet: bool = False) -> int:
    """Run ``cmd`` in the repository; ``quiet`` shows its output only if it fails."""
    result = subprocess.run(cmd, cwd=ROOT, env=env, check=False, capture_output=quiet, text=True)  # noqa: S603
    if check and result.returncode != 0:
        if quiet:
            print(result.stdout, result.stderr, sep="\n", file=sys.stderr)
        say(f"failed ({result.returncode}): {' '.join(cmd)}")
        sys.exit(result.returncode)
    return result.returncode


def uv() -> str:
    """The pinned uv, installed once into .dev/uv with the running interpreter's pip."""
    exe = UV_HOME / ("Scripts/uv.exe" if os.name == "nt" else "bin/uv")
    if exe.exists():
        version = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=False).stdout  # noqa: S603
        if UV_VERSION in version:
            return str(exe)
        shutil.rmtree(UV_HOME)
    say(f"installing uv {UV_VERSION} into {UV_HOME.relative_to(ROOT)}")
    run([sys.executable, "-m", "venv", str(UV_HOME)], quiet=True)
    pip = UV_HOME / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    run([str(pip), "-m", "pip", "install", "--disable-pip-version-check", f"uv=={UV_VERSION}"], quiet=True)
    return str(exe)


def sync(line: str) -> Path:
    """Create or update the environment for Airflow ``line`` ("3" or "2") from uv.lock."""
    venv, extra = ENVIRONMENTS[line]
    started = time.monotonic()
    env = dict(os.environ, UV_PROJECT_ENVIRONMENT=str(venv))
    run([uv(), "sync", "--locked", "--python", sys.executable, *extra], env=env, quiet=True)
    say(f"environment {venv.name} (Airflow {line}) ready in {time.monotonic() - started:.1f}s")
    return venv / ("Scripts" if os.name == "nt" else "bin")


def tool_env(bin_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(bin_dir.parent)
    env.pop("PYTHONPATH", None)
    return env


def cmd_demo(args: argparse.Namespace) -> int:
    global QUIET
    QUIET = True
    bin_dir = sync(args.airflow)
    demo_args = (["--phone", args.phone] if args.phone else []) + (["--keep"] if args.keep else [])
    return run(
        [str(bin_dir / "python"), str(ROOT / "tools" / "demo.py"), *demo_args], env=tool_env(bin_dir), check=False
    )


def cmd_test(args: argparse.Namespace) -> int:
    lines = ["3", "2"] if args.airflow == "all" else [args.airflow]
    started = time.monotonic()
    summary: list[str] = []
    failed = False
    for index, line in enumerate(lines):
        bin_dir = sync(line)
        env = tool_env(bin_dir)
        steps: list[tuple[str, list[str]]] = []
        if index == 0:
            steps += [
                ("ruff check", [str(bin_dir / "ruff"), "check", "."]),
                ("ruff format", [str(bin_dir / "ruff"), "format", "--check", "."]),
            ]
        if index == 0 and line == "3":
            # The docs site, warnings as errors (-n: broken references too); docs/_ext checks
            # the examples it includes, the docstrings and every parameter in the reference.
            steps.append(("docs", [str(bin_dir / "sphinx-build"), *DOCS_BUILD]))
        steps += [
            ("mypy", [str(bin_dir / "mypy")]),
            ("pytest", [str(bin_dir / "python"), "-m", "pytest", *args.pytest_args]),
        ]
        for name, cmd in steps:
            say(f"Airflow {line}: {name}")
            step_started = time.monotonic()
            code = run(cmd, env=env, check=False)
            summary.append(
                f"Airflow {line} {name}: {'ok' if code == 0 else f'FAILED ({code})'} "
                f"in {time.monotonic() - step_started:.0f}s"
            )
            failed = failed or code != 0
    say("summary:\n  " + "\n  ".join(summary))
    say(f"{'FAILED' if failed else 'all green'} in {time.monotonic() - started:.0f}s")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    if sys.version_info < (3, 10):  # noqa: UP036 - this script runs before any environment exists
        print("Python 3.10 or newer is needed", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(
        prog="tools/dev.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the send-and-track example DAG (sandbox by default)")
    demo.add_argument("--phone", help="recipient; required when the real API is used")
    demo.add_argument(
        "--airflow",
        choices=["3", "2"],
        default="3",
        help="run it on Airflow 3.x (.venv) or 2.11 (.venv-af2); default 3",
    )
    demo.add_argument("--keep", action="store_true", help="keep the throwaway Airflow home and its task logs")
    demo.set_defaults(func=cmd_demo)
    test = sub.add_parser("test", help="lint, type-check and run the test suite on both Airflow lines")
    test.add_argument(
        "--airflow", choices=["all", "3", "2"], default="all", help="which Airflow line(s) (default: all)"
    )
    test.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    test.set_defaults(func=cmd_test)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
