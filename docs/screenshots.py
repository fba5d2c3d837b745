"""Build the docs site and save screenshots of three pages for review, with a headless Chromium.

    .venv/bin/python docs/screenshots.py            # needs: apt-get install chromium

Writes docs/_screenshots/{home,batch,troubleshooting}.png (1280 px wide). Not part of the test
command, which must not need a browser.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
OUT = ROOT / ".dev" / "docs-html"
PAGES = {
    "home": ("index.html", 1500),
    "batch": ("reminder-batches.html", 2200),
    "troubleshooting": ("troubleshooting.html", 2200),
}


def main() -> int:
    sphinx = Path(sys.executable).parent / "sphinx-build"
    subprocess.run([str(sphinx), "-W", "-n", "-E", "-q", "-b", "html", str(DOCS), str(OUT)], check=True)  # noqa: S603
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        print("no Chromium found: apt-get install chromium", file=sys.stderr)
        return 1
    target = DOCS / "_screenshots"
    target.mkdir(exist_ok=True)
    for name, (page, height) in PAGES.items():
        with tempfile.TemporaryDirectory() as profile:
            subprocess.run(  # noqa: S603 - our own paths
                [
                    browser,
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--hide-scrollbars",
                    f"--user-data-dir={profile}",
                    f"--window-size=1280,{height}",
                    f"--screenshot={target / f'{name}.png'}",
                    (OUT / page).as_uri(),
                ],
                check=True,
                capture_output=True,
            )
        print(f"{target / f'{name}.png'}: {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
