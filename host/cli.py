"""The ``ultratrain`` command line (console script ``ultratrain = ultratrain.host.cli:main``).

Subcommands live in a registry so that other parts of the project add theirs without touching this file's
logic: a module ``host/cmd_<name>.py`` calls :func:`register_command` at import time and is discovered
automatically (``board-check`` arrives that way). ``train`` is defined here.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["register_command", "COMMANDS", "main", "build_parser", "load_training_data"]


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: object      # (argparse.ArgumentParser) -> None
    run: object                # (argparse.Namespace) -> int


COMMANDS: dict[str, Command] = {}


def register_command(name: str, help: str, add_arguments, run) -> None:
    """Add ``ultratrain <name>``: ``add_arguments(parser)`` declares its options, ``run(args) -> int`` runs it."""
    if not name or not name.replace("-", "").isalnum():
        raise ValueError(f"command name must be letters, digits and dashes, not {name!r}")
    if name in COMMANDS and COMMANDS[name].run is not run:
        raise ValueError(f"command {name!r} is already registered")
    COMMANDS[name] = Command(name, help, add_arguments, run)


def _discover() -> None:
    """Import every ``host/cmd_*.py`` module: each registers its commands."""
    package = Path(__file__).parent
    for info in pkgutil.iter_modules([str(package)]):
        if info.name.startswith("cmd_"):
            importlib.import_module(f"{__package__}.{info.name}")


# ---------------------------------------------------------------------------------------------------------
# train


def load_training_data(data_dir=None, download: bool = False, train_limit=None, test_limit=None):
    """Fashion-MNIST padded to 28x32 (section 3.6.1): ``(train_x, train_y, test_x, test_y)``."""
    import numpy as np
    from .data import load_fashion_mnist, pad_to_28x32
    train = load_fashion_mnist("train", data_dir=data_dir, download=download, limit=train_limit)
    test = load_fashion_mnist("test", data_dir=data_dir, download=download, limit=test_limit)
    return (pad_to_28x32(train.images), train.labels.astype(np.int64),
            pad_to_28x32(test.images), test.labels.astype(np.int64))


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be a positive integer")
    return value


def _add_train_arguments(p: argparse.ArgumentParser) -> None:
    from .trainer import BACKENDS, TrainConfig
    d = TrainConfig()
    p.add_argument("--backend", default=d.backend, help=f"device to train on: {', '.join(BACKENDS)} "
                   f"(default {d.backend})")
    p.add_argument("--precision", choices=("fixed", "float"), default=d.precision,
                   help="fixed: Table 3.2 formats on the device; float: float64, no quantization (default fixed)")
    p.add_argument("--prior", action=argparse.BooleanOptionalAction, default=d.prior,
                   help="low-rank prior (eq. 3.3-3.4) and rank pruning (default on)")
    p.add_argument("--epochs", type=_positive_int, default=d.epochs, help=f"epochs (default {d.epochs})")
    p.add_argument("--batch-size", type=_positive_int, default=d.batch_size,
                   help=f"minibatch size (default {d.batch_size})")
    p.add_argument("--ranks", default=d.ranks, help="internal TT ranks, multiples of 16: one int for all, or "
                   "per layer like '16,16,16/16' (default 16, the thesis model)")
    p.add_argument("--seed", type=int, default=d.seed, help=f"initialization and shuffling seed (default {d.seed})")
    p.add_argument("--out", default="results_local/train", help="output folder: metrics.jsonl, checkpoint.npz, "
                   "curves.png (default results_local/train)")
    p.add_argument("--resume", action="store_true", help="continue the run whose checkpoint is in --out")
    p.add_argument("--data", default=None, metavar="DIR", help="folder with the Fashion-MNIST IDX files "
                   "(default: $ULTRATRAIN_DATA, Debian's dataset-fashion-mnist, the download cache)")
    p.add_argument("--download", action="store_true", help="download Fashion-MNIST if it is not found")
    p.add_argument("--lr", type=float, default=d.lr, help=f"Adam learning rate (default {d.lr}, cosine decay)")
    p.add_argument("--lr-schedule", choices=("cosine", "constant"), default=d.lr_schedule)
    p.add_argument("--prior-weight", type=float, default=d.prior_weight,
                   help="weight of eq. 3.3 in units of 1/N_train (default 1: the posterior per sample)")
    p.add_argument("--prune-threshold", type=float, default=d.prune_threshold,
                   help="prune a rank slice when lambda < this * max lambda of its rank (default %(default)s)")
    p.add_argument("--intermediate", choices=("s8", "s16"), default=d.intermediate,
                   help="format of the forward TT intermediates (default s8, as in the thesis)")
    p.add_argument("--train-limit", type=_positive_int, default=None, help="use the first N training images")
    p.add_argument("--test-limit", type=_positive_int, default=None, help="use the first N test images")
    p.add_argument("--eval-batch", type=_positive_int, default=d.eval_batch,
                   help=f"batch size of the evaluation program (default {d.eval_batch})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _run_train(args) -> int:
    from .data import DatasetError
    from .trainer import CheckpointError, TrainConfig, Trainer
    try:
        config = TrainConfig(precision=args.precision, prior=args.prior, epochs=args.epochs,
                             batch_size=args.batch_size, ranks=args.ranks, seed=args.seed, lr=args.lr,
                             lr_schedule=args.lr_schedule, prior_weight=args.prior_weight,
                             prune_threshold=args.prune_threshold, intermediate=args.intermediate,
                             train_limit=args.train_limit, test_limit=args.test_limit,
                             eval_batch=args.eval_batch, backend=args.backend)
        config.network()       # checks --ranks before the data is read
        data = load_training_data(args.data, args.download, args.train_limit, args.test_limit)
        trainer = Trainer(config, data, out=args.out, progress=not args.no_progress)
        history = trainer.fit(resume=args.resume)
    except (ValueError, DatasetError, CheckpointError) as err:
        print(f"ultratrain train: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nultratrain train: interrupted; the last completed epoch is in {args.out}/checkpoint.npz "
              f"(continue with --resume)", file=sys.stderr)
        return 130
    if history:
        last = history[-1]
        best = max(history, key=lambda m: m["test_acc"])
        print(f"final epoch {last['epoch']}: test accuracy {last['test_acc']:.4f}; best epoch {best['epoch']}: "
              f"{best['test_acc']:.4f}; ranks {last['ranks']}, {last['params']} parameters, "
              f"{last['memory_bits']} bits -> {args.out}")
    return 0


register_command("train", "train the TT network of Table 3.3 (Algorithm 2) on a device backend",
                 _add_train_arguments, _run_train)


# ---------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    _discover()
    parser = argparse.ArgumentParser(prog="ultratrain", description="UltraTrain: low-rank TT training in fixed "
                                     "point on the Ultra96-V2 accelerator (or its emulation)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for cmd in COMMANDS.values():
        cmd.add_arguments(sub.add_parser(cmd.name, help=cmd.help, description=cmd.help))
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command].run(args)


if __name__ == "__main__":
    sys.exit(main())
