#!/usr/bin/env python3
"""Render an awml-harness HTML report (or a metrics JSON, rendered first) in headless
Chromium and save a PNG screenshot of the first screen, to check what a reader sees
above the fold.

    python tools/render_report.py RUN.json -o shot.png          # render, then screenshot
    python tools/render_report.py report.html -o shot.png --height 900

Needs a Chromium binary (Debian: `apt-get install chromium`; or --chromium PATH). Runs
offline: no sandbox, GPU, network services or first-run profile; a fresh profile folder
per call.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_chromium(explicit: str | None = None) -> str | None:
    if explicit:
        return explicit if Path(explicit).exists() or shutil.which(explicit) else None
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def screenshot(html_path: Path, png_path: Path, *, chromium: str, width: int = 1280, height: int = 900,
               timeout: float = 120.0) -> Path:
    """Load `html_path` in headless Chromium and write a `width` x `height` PNG."""
    png_path = Path(png_path).resolve()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="awml-chromium-") as profile:
        cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--hide-scrollbars", f"--user-data-dir={profile}", f"--screenshot={png_path}",
               f"--window-size={width},{height}", Path(html_path).resolve().as_uri()]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0 or not png_path.exists():
        raise RuntimeError(f"chromium exited {done.returncode} without writing {png_path}:\n{done.stderr[-2000:]}")
    return png_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="a report .html, or a metrics .json to render first")
    parser.add_argument("-o", "--output", type=Path, required=True, help="PNG to write")
    parser.add_argument("--html", type=Path, default=None, help="where to keep the rendered HTML (JSON input)")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=900)
    parser.add_argument("--chromium", default=None,
                        help=f"Chromium binary (default: first of {', '.join(CANDIDATES)} on PATH)")
    args = parser.parse_args(argv)
    chromium = find_chromium(args.chromium)
    if chromium is None:
        print("render_report: no Chromium found; install it (Debian: apt-get install chromium) or pass --chromium",
              file=sys.stderr)
        return 2
    html_path = args.source
    with tempfile.TemporaryDirectory(prefix="awml-report-") as tmp:
        if args.source.suffix == ".json":
            import json

            from awml_harness.atomic import write_text
            from awml_harness.report.html import render_report

            html_path = args.html or Path(tmp) / "report.html"
            write_text(html_path, render_report(json.loads(args.source.read_text())))
        out = screenshot(html_path, args.output, chromium=chromium, width=args.width, height=args.height)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
