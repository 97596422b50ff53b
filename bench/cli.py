"""CLI latency benchmark: aegir commands vs the raw Prefect CLI doing the same work (not a test).

Starts a private local Prefect server (temp PREFECT_HOME, free port), then times each pair alternately,
median of N rounds, and writes docs/benchmarks.md's CLI section.

    .venv/bin/python bench/cli.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
AEGIR, PREFECT = str(BIN / "aegir"), str(BIN / "prefect")
ROOT = Path(__file__).resolve().parent.parent

NOOP_FLOW = """
from prefect import flow, task
@task
def step(): return 1
@flow
def noop(): return step()
noop()
"""


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{argv} failed: {result.stderr[-500:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="aegir-bench-")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=home, AEGIR_ROOT=f"{home}/aegir")
    subprocess.run([AEGIR, "server", "start", "--port", str(port)], env=env, check=True, capture_output=True)
    try:
        subprocess.run(
            [AEGIR, "save", "@server_bench", "--context_type=server"], env=env, check=True, capture_output=True
        )
        pairs = [
            ("--help", [AEGIR, "--help"], [PREFECT, "--help"]),
            (
                "show a context",
                [AEGIR, "show", "@server_bench"],
                [PREFECT, "block", "inspect", "aegir-server/server-bench"],
            ),
            ("list contexts", [AEGIR, "list"], [PREFECT, "block", "ls"]),
            (
                "no-op task flow (verify, null services)",
                [AEGIR, "verify", "@server_bench"],
                [sys.executable, "-c", NOOP_FLOW],
            ),
        ]
        rows = []
        for label, ours, raw in pairs:
            a, b = [], []
            for _ in range(args.rounds):
                a.append(timed(ours, env))
                b.append(timed(raw, env))
            ma, mb = statistics.median(a), statistics.median(b)
            shown_raw = "python -c <one-task flow>" if raw[1] == "-c" else " ".join([Path(raw[0]).name, *raw[1:]])
            rows.append((label, " ".join([Path(ours[0]).name, *ours[1:]]), shown_raw, ma, mb))
            print(f"{label:42s} aegir {ma:6.2f} s   raw {mb:6.2f} s   ratio {ma / mb:5.2f}")
    finally:
        subprocess.run([AEGIR, "server", "stop"], env=env, capture_output=True)
    write_report(rows, args.rounds)


def write_report(rows, rounds: int) -> None:
    path = ROOT / "docs" / "benchmarks.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start, end = "<!-- cli:start -->", "<!-- cli:end -->"
    lines = [
        start,
        "## CLI latency (bench/cli.py)",
        "",
        f"Local `prefect server` (SQLite) on 127.0.0.1, wall time per command, median of {rounds} alternating rounds,"
        f" {os.cpu_count()} cores. Targets (issue #2): `--help` ≤ 0.3 s, show/list ≤ 1.5 s, no-op task flow ≤ 3 s.",
        "",
        "| what | aegir | raw Prefect doing the same | aegir (s) | raw (s) | ratio |",
        "|---|---|---|---:|---:|---:|",
    ]
    for label, ours, raw, a, b in rows:
        lines.append(f"| {label} | `{ours}` | `{raw}` | {a:.2f} | {b:.2f} | {a / b:.2f} |")
    lines += ["", "The raw no-op flow is a one-task `@flow` run by `python -c` against the same server.", end]
    block = "\n".join(lines)
    if start in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


if __name__ == "__main__":
    main()
