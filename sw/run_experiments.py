"""Run every experiment script under sw/ (modules named ``exp_*``), e.g. ``make theory-quick``.

Each script has ``main(argv=None)`` accepting ``--quick`` (minutes on 2 cores) and ``--out DIR``; it writes
JSON results and PNG figures there. ``python -m ultratrain.sw.run_experiments --quick [--only PATTERN]``.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib
import pkgutil
import sys
import time
from pathlib import Path

import ultratrain.sw as sw_package


def discover() -> list[str]:
    """Dotted names of every ``exp_*`` module below ``ultratrain.sw``, sorted."""
    names = []
    for info in pkgutil.walk_packages(sw_package.__path__, prefix="ultratrain.sw."):
        if info.name.rsplit(".", 1)[-1].startswith("exp_"):
            names.append(info.name)
    return sorted(names)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="quick mode of every experiment")
    parser.add_argument("--only", default="*", help="glob on the module name, e.g. '*ntk*'")
    parser.add_argument("--out", default="results_local/theory", help="root folder for the results")
    args = parser.parse_args(argv)
    failed = []
    for name in discover():
        if not fnmatch.fnmatch(name, args.only):
            continue
        out = Path(args.out) / name.removeprefix("ultratrain.sw.").replace(".", "/")
        print(f"== {name} -> {out}", flush=True)
        start = time.time()
        try:
            module = importlib.import_module(name)
            module.main((["--quick"] if args.quick else []) + ["--out", str(out)])
        except Exception as err:  # report every failure, run the rest
            failed.append(name)
            print(f"!! {name} failed: {err!r}", file=sys.stderr)
        print(f"   {time.time() - start:.1f} s", flush=True)
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
