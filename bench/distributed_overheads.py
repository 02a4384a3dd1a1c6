#!/usr/bin/env python
"""What multi-process training adds per iteration, measured with real gloo processes.

- the preemption check: one MAX all_reduce of an int64 CPU tensor on detectron2's gloo group
  (``contextrast.engine.preemption``), averaged over ``--calls`` calls;
- global sampling caps: both samplers of one layer with ``global_caps`` on and off
  (``contextrast.modeling.contrast.sampling``), averaged over ``--repeats`` calls.

Usage (CPU): ``OMP_NUM_THREADS=1 python bench/distributed_overheads.py``
"""

import argparse
import socket
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _worker(rank: int, port: int, args) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=args.processes
    )
    from detectron2.utils import comm

    from contextrast.modeling.contrast.sampling import sample_negatives, sample_positives

    group = comm._get_global_gloo_group()
    flag = torch.zeros(1, dtype=torch.int64)
    for _ in range(50):  # warm-up
        dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=group)
    start = time.perf_counter()
    for _ in range(args.calls):
        dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=group)
    all_reduce_s = (time.perf_counter() - start) / args.calls

    torch.manual_seed(rank)
    n, p = args.classes, args.pixels
    labels = torch.randint(0, n, (p,))
    bane = torch.rand(p) < 0.05
    anchor = torch.randint(0, n, (p,))

    def step(global_caps: bool) -> None:
        sample_positives(labels, n, 1024, global_caps=global_caps)
        sample_negatives(labels, n, min_count=256, max_count=1024, bane_negatives=bane,
                         bane_anchor=anchor, global_caps=global_caps)  # fmt: skip

    times = {}
    for global_caps in (False, True):
        for _ in range(3):
            step(global_caps)
        dist.barrier()
        start = time.perf_counter()
        for _ in range(args.repeats):
            step(global_caps)
        times[global_caps] = (time.perf_counter() - start) / args.repeats
    if rank == 0:
        print(
            f"{args.processes} gloo processes: preemption check (all_reduce of 1 int64) "
            f"{all_reduce_s * 1e6:.0f} us; samplers of one layer ({p} pixels per process, {n} "
            f"classes, caps 1024/256/1024): per_process {times[False] * 1e3:.1f} ms, global "
            f"{times[True] * 1e3:.1f} ms"
        )
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--classes", type=int, default=19)
    parser.add_argument("--pixels", type=int, default=2 * 64 * 128, help="per process and layer")
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_worker, args=(port, args), nprocs=args.processes, start_method="spawn")


if __name__ == "__main__":
    main()
