"""Functions run in several spawned processes joined in a gloo process group (CPU collectives)."""

import os
import time
from datetime import timedelta
from typing import Any, Callable, List

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from .processes import free_port

__all__ = ["run_in_process_group"]


def _member(rank: int, fn: Callable, world: int, port: int, timeout_s: float, out: str) -> None:
    # A collective that waits longer than half the test's budget has lost a process.
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
        timeout=timedelta(seconds=timeout_s // 2),
    )  # fmt: skip
    try:
        torch.save(fn(rank), os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def run_in_process_group(
    fn: Callable[[int], Any], out_dir: str, *, world: int, timeout_s: float, what: str
) -> List[Any]:
    """``fn(rank)`` in ``world`` spawned processes of one gloo group on 127.0.0.1.

    Args:
        fn: a module-level function (spawned processes import it by name); its return value
            must be ``torch.save``-able.
        out_dir: folder for the per-process results.
        world: number of processes.
        timeout_s: budget of the whole run; the processes are killed and the test fails after it
            (a collective waiting for a process that never comes).
        what: what the processes compute, for the failure message.

    Returns:
        The return values of ``fn``, by rank.
    """
    ctx = mp.start_processes(
        _member, args=(fn, world, free_port(), timeout_s, out_dir), nprocs=world, join=False,
        start_method="spawn",
    )  # fmt: skip
    deadline = time.monotonic() + timeout_s
    while not ctx.join(timeout=1):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail(f"{what} processes did not finish in {timeout_s}s (deadlock?)")
    return [torch.load(os.path.join(out_dir, f"rank{r}.pt")) for r in range(world)]
