"""`make bench`: measure the web UI against the Ollama double and write docs/benchmarks.md.

.venv/bin/python -m tests.bench              # everything, 3 runs each (under 10 minutes)
.venv/bin/python -m tests.bench --quick      # 1 run, smaller loads: a smoke test of the harness
.venv/bin/python -m tests.bench --only 1,4   # some points only (the document is not written)
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from tests.bench import report
from tests.bench.harness import ROOT, Environment, raise_fd_limit

ALL_POINTS = {"1", "2", "3", "4", "5", "6", "7", "8"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=None, help="runs per figure (default 3, 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="one run, smaller loads, no PostgreSQL")
    parser.add_argument("--only", default="", help="comma-separated points, e.g. 1,4,7")
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--json", default="", help="also write the figures as JSON here")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, databases)")
    parser.add_argument(
        "--priority",
        type=int,
        default=0,
        help="lower the niceness of the benchmark and its servers by this much (needs root): on a "
        "shared machine, other work then disturbs the figures less; the document says so",
    )
    args = parser.parse_args(argv)
    if args.priority:
        os.nice(-args.priority)  # children (daphne, the double) inherit it
    runs = args.runs or (1 if args.quick else 3)
    points = {point.strip() for point in args.only.split(",") if point.strip()} or set(ALL_POINTS)
    raise_fd_limit(8192)

    started, started_clock = datetime.datetime.now(datetime.UTC), time.monotonic()
    load_start = report.load_average()
    calibration_start = report.calibrate()
    root = Path(tempfile.mkdtemp(prefix="webui-bench-"))
    notes: list[str] = []
    from tests.bench import chat, histories, pulls, world

    figures = chat.chat_figures()
    history_figures = histories.history_figures()
    pull_figures = pulls.pull_figures()
    try:
        if points & {"1", "2", "3", "4", "5", "6", "8"}:
            # One database for the sockets' points; users and sessions made here, through Django.
            environment = Environment(root / "world")
            environment.migrate()
            world.setup_django(environment)
            if points & {"1", "2", "3", "4", "5", "6"}:
                asyncio.run(chat.run_chat_points(environment, runs, args.quick, points, figures, notes))
            if "8" in points:
                pulls.run(environment, runs, pull_figures, notes)
        if "7" in points:  # in processes of their own: one per database
            histories.run(root, runs, args.quick, history_figures, notes)
    finally:
        if args.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    every = [*figures.values(), *history_figures.values(), *pull_figures.values()]
    command = "make bench" if not sys.argv[1:] else "python -m tests.bench " + " ".join(sys.argv[1:])
    generated = report.render(
        every,
        runs=runs,
        started=started,
        seconds=time.monotonic() - started_clock,
        load=(load_start, report.load_average()),
        notes=notes,
        command=command,
        calibration=(calibration_start, report.calibrate()),
        niceness=os.nice(0),
    )
    print(generated)
    if args.json:
        report.dump(Path(args.json), every, notes)
    partial = points != ALL_POINTS or args.quick or runs < 3
    if not args.no_write and not partial:
        report.write(Path(args.output), generated)
        print(f"wrote {args.output}", file=sys.stderr)
    elif not args.no_write:
        print("not writing the document: a partial or quick run", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
