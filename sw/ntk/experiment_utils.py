"""Shared plumbing of the chapter-4 experiment scripts: argument parsing, seeding, JSON and figure output."""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

__all__ = ["base_parser", "setup_run", "write_json", "pyplot"]


def base_parser(description: str, default_out: str) -> argparse.ArgumentParser:
    """Parser with the common ``--quick``, ``--out`` and ``--seed`` options."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small configuration (minutes on 2 cores)")
    parser.add_argument("--out", default=default_out, help=f"output folder (default {default_out})")
    parser.add_argument("--seed", type=int, default=0, help="master seed")
    return parser


def setup_run(args, threads: int = 1) -> Path:
    """Fix seeds and thread count, create the output folder, return it."""
    import torch

    torch.set_num_threads(threads)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path, payload: dict, args=None, started: float | None = None) -> Path:
    """Write ``payload`` with a small provenance header (mode, seed, machine, wall time)."""
    record = {"meta": {"mode": None if args is None else ("quick" if args.quick else "full"),
                       "argv": None if args is None else {k: v for k, v in vars(args).items()},
                       "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
                       "cpus": os.cpu_count(),
                       "wall_s": None if started is None else round(time.time() - started, 1)}}
    record.update(payload)
    path = Path(path)
    path.write_text(json.dumps(_jsonable(record), indent=2))
    return path


def pyplot():
    """matplotlib.pyplot with the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
