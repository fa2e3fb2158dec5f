"""Entry point of ``make bench``: see ``benchmarks/__init__.py``."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import platform
import sys
import time
from pathlib import Path


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="UltraTrain benchmarks: one JSON object on stdout")
    parser.add_argument("--only", default="", help="run modules whose name contains this")
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    here = Path(__file__).parent
    result: dict = {"machine": machine()}
    # Simulator builds and cocotb runs write to file descriptor 1 from subprocesses: point it at stderr while
    # the modules run, so that stdout carries the JSON object and nothing else.
    sys.stdout.flush()
    json_out = os.dup(1)
    os.dup2(2, 1)
    try:
        for info in sorted(pkgutil.iter_modules([str(here)]), key=lambda i: i.name):
            if not info.name.startswith("bench_") or args.only not in info.name:
                continue
            start = time.time()
            print(f"bench: {info.name} ...", file=sys.stderr, flush=True)
            module = importlib.import_module(f"benchmarks.{info.name}")
            for key, value in module.run().items():
                if key in result:
                    raise SystemExit(f"bench: key {key!r} from {info.name} is already taken")
                result[key] = value
            print(f"bench: {info.name} done in {time.time() - start:.1f} s", file=sys.stderr, flush=True)
    finally:
        sys.stdout.flush()
        os.dup2(json_out, 1)
        os.close(json_out)
    text = json.dumps(result, indent=2, sort_keys=True)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
