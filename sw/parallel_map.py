"""Run independent experiment jobs on at most two worker processes with a progress bar (shared 2-core machine).

One helper for every sw/ experiment that fans out repeats or sweeps. Flushing denormals keeps tiny late-training
gradients from slowing the CPU down (subnormal float arithmetic is far slower on x86).
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterable

from tqdm import tqdm


def _init_worker():
    import torch

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)


def parallel_map(fn: Callable, items: Iterable, workers: int = 2, desc: str = "") -> list:
    """``[fn(item) for item in items]``, order kept; ``workers <= 1`` runs in this process."""
    items = list(items)
    if workers <= 1 or len(items) <= 1:
        return [fn(it) for it in tqdm(items, desc=desc, leave=False)]
    with ProcessPoolExecutor(max_workers=min(workers, 2), initializer=_init_worker) as pool:
        return list(tqdm(pool.map(fn, items), total=len(items), desc=desc, leave=False))
