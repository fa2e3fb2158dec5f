"""Reproduce Table 3.3 (thesis section 3.6.1): Fashion-MNIST, float / fixed point, with / without the prior.

``make reproduce-table3.3`` runs::

    python -m ultratrain.sw.tt.table33 --epochs 30 --out results_local/table3_3 --doc docs/results/table3_3.md

* Fixed-point rows: ``ultratrain train --precision fixed`` on the emulated device (the golden executor), one
  subprocess per row; a row whose folder already holds a checkpoint is resumed, one that is complete is
  only read back. This is "our simulator (Fixed)" of the thesis.
* Float rows: the PyTorch reference (sw/tt/train.py; "standard floating point computation in Pytorch"),
  the same algorithm, initialization and data order as ``ultratrain train --precision float``.

Rows run ``--jobs`` at a time (default 2: the machine has two cores). The page written to ``--doc`` lists the
final-epoch and best-epoch test accuracy (the thesis reports the best epoch), the running training accuracy
of that epoch, the effective parameters and the model memory, beside the thesis' numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["ROWS", "THESIS", "main", "write_table"]

# name -> (precision, prior)
ROWS = {
    "float_no-prior": ("float", False),
    "fixed_no-prior": ("fixed", False),
    "float_prior": ("float", True),
    "fixed_prior": ("fixed", True),
}
LABELS = {"float_no-prior": "Floating, w/o prior", "fixed_no-prior": "Fixed, w/o prior",
          "float_prior": "Floating, w/ prior", "fixed_prior": "Fixed, w/ prior"}
# Table 3.3 of the thesis: training acc, testing acc (best epoch), parameters, memory bits.
THESIS = {
    "vanilla": (95.75, 89.27, 4.67e5, 1.49e7),
    "float_no-prior": (92.54, 88.03, 1.48e4, 4.74e5),
    "fixed_no-prior": (88.31, 86.67, 1.48e4, 6.13e4),
    "float_prior": (90.17, 87.88, 1.08e4, 3.46e5),
    "fixed_prior": (85.45, 84.86, 1.22e4, 5.11e4),
}
# The targets for the final-epoch test accuracy (and the memory of the fixed row with prior).
TARGETS = {"fixed_prior": 86.5, "fixed_no-prior": 87.0, "float_prior": 88.3, "float_no-prior": 88.3}
# Issue 4 also bounds the fixed-point-with-prior model: at most 5.11e4 bits of model memory.
MEMORY_TARGETS = {"fixed_prior": 5.11e4}


def _row_command(name: str, args) -> list[str]:
    precision, prior = ROWS[name]
    out = Path(args.out) / name
    if precision == "fixed":
        cmd = [sys.executable, "-m", "ultratrain.host.cli", "train", "--precision", "fixed",
               "--prior" if prior else "--no-prior", "--epochs", str(args.epochs), "--out", str(out),
               "--seed", str(args.seed)]
        if (out / "checkpoint.npz").exists():
            cmd.append("--resume")
    else:
        cmd = [sys.executable, "-m", "ultratrain.sw.tt.table33", "--float-row", name, "--epochs", str(args.epochs),
               "--out", str(args.out), "--seed", str(args.seed)]
    for opt in ("data", "train_limit", "test_limit"):
        value = getattr(args, opt)
        if value is not None:
            cmd += [f"--{opt.replace('_', '-')}", str(value)]
    return cmd


def _history(folder: Path) -> list[dict]:
    path = folder / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _run_float_row(name: str, args) -> int:
    """One float row with the PyTorch reference; metrics.jsonl is rewritten after every epoch."""
    import torch
    from ...host.cli import load_training_data
    from ...host.trainer import TrainConfig
    from .train import FloatTrainer
    torch.set_num_threads(1)
    precision, prior = ROWS[name]
    config = TrainConfig(precision=precision, prior=prior, epochs=args.epochs, seed=args.seed,
                         train_limit=args.train_limit, test_limit=args.test_limit)
    data = load_training_data(args.data, False, args.train_limit, args.test_limit)
    out = Path(args.out) / name
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps({**config.to_dict(), "backend": "pytorch-float32"}, indent=2) + "\n")
    trainer = FloatTrainer(config, data, dtype=torch.float32)
    while trainer.epoch < config.epochs:
        metrics = trainer.train_epoch()
        trainer.history.append(metrics)
        print(f"{name} epoch {metrics['epoch']}: train {metrics['train_acc']:.4f} test {metrics['test_acc']:.4f} "
              f"ranks {metrics['ranks']} params {metrics['params']}", file=sys.stderr, flush=True)
        tmp = out / "metrics.jsonl.tmp"
        tmp.write_text("".join(json.dumps(m, sort_keys=True) + "\n" for m in trainer.history))
        os.replace(tmp, out / "metrics.jsonl")
    return 0


def summarize(histories: dict) -> dict:
    """Per row: final and best epoch (test accuracy), their training accuracy, parameters and memory.

    Parameters and memory are recomputed from the logged effective ranks with host/model.py's count, so rows
    logged by older code versions are tabulated alike."""
    from ...host.model import effective_params, memory_bits
    from ...sim.compiler import thesis_table33_network
    spec = thesis_table33_network(16)
    out = {}
    for name, history in histories.items():
        if not history:
            continue
        precision = ROWS[name][0]
        history = [{**m, "params": effective_params(spec, m["ranks"]),
                    "memory_bits": memory_bits(spec, m["ranks"], precision)} for m in history]
        last = history[-1]
        best = max(history, key=lambda m: m["test_acc"])
        out[name] = {"epochs": last["epoch"],
                     "final": {k: last[k] for k in ("epoch", "train_acc", "test_acc", "params", "memory_bits",
                                                     "ranks")},
                     "best": {k: best[k] for k in ("epoch", "train_acc", "test_acc", "params", "memory_bits",
                                                    "ranks")}}
    return out


def write_table(summary: dict, epochs: int, command: str, machine: str) -> str:
    """The Markdown page: measured beside the thesis."""
    lines = [
        "# Table 3.3 reproduced: Fashion-MNIST training, float / fixed point, with / without the low-rank prior",
        "",
        "Model of section 3.6.1: input zero-padded to 28x32 = 7x4x2x16, hidden 512 = 4x4x2x16 (TT ranks 16,16,16),",
        "second layer 32x16 -> 1x16 (rank 16); ReLU (fixed point: the quantized clipped ReLU of eq. 3.7).",
        f"Target: {epochs} epochs. Fixed rows: `ultratrain train --precision fixed` on the emulated device (the",
        "golden executor, bit-exact with the RTL contract). Float rows: the PyTorch float32 reference",
        "(sw/tt/train.py), the same algorithm, initialization and data order.",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine}",
        "",
        "Accuracies in %. *final* = last epoch run; *best* = the epoch with the highest test accuracy (what the",
        "thesis reports). Training accuracy is the running accuracy over the epoch's minibatches. Parameters =",
        "TT-core entries at the effective (unpruned) ranks + the 512 + 16 biases; memory = 4 bits per core",
        "entry and 8 per bias in fixed point (Table 3.2), 32 bits each in float.",
        "",
        "| Method | epochs run | test final | test best (epoch) | train (best epoch) | parameters | memory bits | "
        "thesis train | thesis test | thesis params | thesis bits | target test (final) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    t = THESIS["vanilla"]
    lines.append(f"| Vanilla (dense, thesis only) | - | - | - | - | - | - | {t[0]:.2f} | {t[1]:.2f} | {t[2]:.2e} | "
                 f"{t[3]:.2e} | - |")
    for name in ("float_no-prior", "fixed_no-prior", "float_prior", "fixed_prior"):
        t = THESIS[name]
        s = summary.get(name)
        if s is None:
            lines.append(f"| {LABELS[name]} | not run | | | | | | {t[0]:.2f} | {t[1]:.2f} | {t[2]:.2e} | "
                         f"{t[3]:.2e} | {TARGETS[name]} |")
            continue
        f, b = s["final"], s["best"]
        met = 100 * f["test_acc"] >= TARGETS[name] and f["memory_bits"] <= MEMORY_TARGETS.get(name, float("inf"))
        target = f"{TARGETS[name]}" + (f", <= {MEMORY_TARGETS[name]:.3g} bits" if name in MEMORY_TARGETS else "")
        lines.append(f"| {LABELS[name]} | {s['epochs']} | {100 * f['test_acc']:.2f} | {100 * b['test_acc']:.2f} "
                     f"({b['epoch']}) | {100 * b['train_acc']:.2f} | {f['params']:.3g} | {f['memory_bits']:.3g} | "
                     f"{t[0]:.2f} | {t[1]:.2f} | {t[2]:.2e} | {t[3]:.2e} | {target} "
                     f"({'met' if met else 'not met'}) |")
    lines += ["", "Final effective ranks per layer: " + "; ".join(
        f"{LABELS[n]} {summary[n]['final']['ranks']}" for n in summary), ""]
    return "\n".join(lines) + "\n"


def _machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores (shared with other jobs), {time.strftime('%Y-%m-%d')}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--out", default="results_local/table3_3")
    p.add_argument("--rows", default=",".join(ROWS), help="comma list of " + ", ".join(ROWS))
    p.add_argument("--jobs", type=int, default=2, help="rows run in parallel (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default=None)
    p.add_argument("--train-limit", type=int, default=None)
    p.add_argument("--test-limit", type=int, default=None)
    p.add_argument("--doc", default=None, help="write the Markdown table here (and a .json and .png beside it)")
    p.add_argument("--collect-only", action="store_true", help="do not train: tabulate what --out holds")
    p.add_argument("--float-row", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.float_row:
        return _run_float_row(args.float_row, args)
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        p.error(f"--rows: unknown row(s) {unknown}; choose from {', '.join(ROWS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.collect_only:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        pending = [r for r in rows if len(_history(out / r)) < args.epochs]
        running: list[tuple[str, subprocess.Popen, object]] = []
        failed = []
        while pending or running:
            while pending and len(running) < max(1, args.jobs):
                name = pending.pop(0)
                log = open(out / f"{name}.log", "a")
                print(f"table33: starting {name}: {' '.join(_row_command(name, args))}", file=sys.stderr, flush=True)
                running.append((name, subprocess.Popen(_row_command(name, args), stdout=log, stderr=log, env=env),
                                log))
            time.sleep(5)
            for item in list(running):
                name, proc, log = item
                if proc.poll() is not None:
                    log.close()
                    running.remove(item)
                    print(f"table33: {name} finished with status {proc.returncode}", file=sys.stderr, flush=True)
                    if proc.returncode:
                        failed.append(name)
        if failed:
            print(f"table33: rows failed: {failed} (see {out}/<row>.log)", file=sys.stderr)
    histories = {r: _history(out / r) for r in rows}
    summary = summarize(histories)
    if args.epochs == 30 and args.out == "results_local/table3_3" and not (args.train_limit or args.test_limit):
        command = "make reproduce-table3.3"
    else:
        command = f"python -m ultratrain.sw.tt.table33 --epochs {args.epochs} --out {args.out}" + "".join(
            f" --{k.replace('_', '-')} {getattr(args, k)}" for k in ("train_limit", "test_limit")
            if getattr(args, k))
    text = write_table(summary, args.epochs, command, _machine())
    print(text)
    if args.doc:
        doc = Path(args.doc)
        doc.parent.mkdir(parents=True, exist_ok=True)
        doc.write_text(text)
        doc.with_suffix(".json").write_text(json.dumps({"summary": summary, "histories": histories}, indent=1) + "\n")
        from ...host.plots import plot_table
        plot_table({LABELS[r]: h for r, h in histories.items() if h}, doc.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
