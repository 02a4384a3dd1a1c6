"""Start the training processes: detectron2's ``launch``, ``torchrun`` or ``srun`` (SLURM).

:func:`launch_from_args` reads how the processes were started from the environment:

- ``torchrun`` (``TORCHELASTIC_RUN_ID``, or ``RANK`` + ``WORLD_SIZE`` + ``LOCAL_RANK``): this
  process is one rank; ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``,
  ``MASTER_ADDR`` / ``MASTER_PORT`` come from torchrun.
- an ``srun`` job step with more than one task (``SLURM_STEP_NUM_TASKS`` > 1, set by ``srun``
  but not in the batch script itself): rank ``SLURM_PROCID``, local rank ``SLURM_LOCALID``, world
  size ``SLURM_STEP_NUM_TASKS``, tasks on this node from ``SLURM_STEP_TASKS_PER_NODE``; the
  rendezvous host is the first node of ``SLURM_STEP_NODELIST`` (``scontrol show hostnames``) unless
  ``MASTER_ADDR`` is set, the port ``MASTER_PORT`` or one derived from ``SLURM_JOB_ID``.
- otherwise detectron2's ``launch`` (``--num-gpus``, ``--num-machines``, ``--dist-url``), as before.

In the first two cases the process group is initialised with ``env://`` (NCCL when CUDA is
available, gloo otherwise, as ``launch`` chooses), the process uses GPU ``local_rank`` and
detectron2's per-machine group is created (``comm.create_local_process_group``), which is all
``launch`` does for its workers. The launch flags then contradict the environment and are rejected
with a message naming the flag to drop.

A run stopped by a preemption signal (:mod:`.preemption`) exits with :data:`PREEMPTED_EXIT_CODE`
in every launch mode; under ``launch`` the parent process forwards the signal to its workers and
exits with the same status.
"""

import logging
import os
import re
import signal
import subprocess
from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Optional

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from detectron2.engine import launch
from detectron2.engine.launch import DEFAULT_TIMEOUT
from detectron2.utils import comm

from .preemption import PREEMPTED_EXIT_CODE, PREEMPTION_SIGNALS, TrainingPreempted

__all__ = [
    "DistributedEnv",
    "detect_distributed_env",
    "check_launch_args",
    "launch_from_args",
]

logger = logging.getLogger(__name__)

# Port range for SLURM jobs without MASTER_PORT: two jobs sharing a node get different ports.
_SLURM_PORT_BASE, _SLURM_PORT_SPAN = 20000, 20000


@dataclass(frozen=True)
class DistributedEnv:
    """One process of a job whose processes were started outside this program."""

    source: str  # "torchrun" or "slurm"
    rank: int
    local_rank: int
    world_size: int
    local_world_size: int
    master_addr: str
    master_port: int


def _int(environ: Mapping[str, str], key: str) -> int:
    try:
        return int(environ[key])
    except (KeyError, ValueError) as e:
        raise ValueError(
            f"environment variable {key}={environ.get(key)!r}: expected an integer"
        ) from e


def _tasks_on_node(tasks_per_node: str, node_index: int) -> int:
    """Tasks of node ``node_index`` from SLURM's compressed list, e.g. ``"4(x2),3"``."""
    counts: List[int] = []
    for part in tasks_per_node.split(","):
        match = re.fullmatch(r"(\d+)(?:\(x(\d+)\))?", part.strip())
        if match is None:
            raise ValueError(f"cannot parse SLURM tasks per node {tasks_per_node!r}")
        counts += [int(match.group(1))] * int(match.group(2) or 1)
    return counts[node_index]


def _first_host(nodelist: str) -> str:
    """First host of a SLURM node list (``scontrol show hostnames``; plain names without it)."""
    if not nodelist:
        raise ValueError("an srun step without SLURM_STEP_NODELIST: set MASTER_ADDR")
    try:
        out = subprocess.run(
            ["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, check=True
        ).stdout.split()
        if out:
            return out[0]
    except (OSError, subprocess.CalledProcessError):
        pass
    first = nodelist.split(",")[0]
    if "[" in first:
        raise ValueError(
            f"SLURM_STEP_NODELIST={nodelist!r} needs `scontrol show hostnames` to expand it, and "
            "scontrol is not available here: set MASTER_ADDR to the first node's address"
        )
    return first


def detect_distributed_env(environ: Mapping[str, str] = os.environ) -> Optional[DistributedEnv]:
    """The job's layout when torchrun or an srun step started this process, else None.

    Raises:
        ValueError: an environment variable that is set but cannot be used.
    """
    if "TORCHELASTIC_RUN_ID" in environ or {"RANK", "WORLD_SIZE", "LOCAL_RANK"} <= set(environ):
        world = _int(environ, "WORLD_SIZE")
        return DistributedEnv(
            source="torchrun",
            rank=_int(environ, "RANK"),
            local_rank=_int(environ, "LOCAL_RANK"),
            world_size=world,
            local_world_size=int(environ.get("LOCAL_WORLD_SIZE", world)),
            master_addr=environ.get("MASTER_ADDR", "127.0.0.1"),
            master_port=int(environ.get("MASTER_PORT", 29500)),
        )
    if int(environ.get("SLURM_STEP_NUM_TASKS", "1") or 1) > 1:
        nodelist = environ.get("SLURM_STEP_NODELIST", environ.get("SLURM_NODELIST", ""))
        addr = environ.get("MASTER_ADDR") or _first_host(nodelist)
        port = environ.get("MASTER_PORT")
        if port is None:
            port = _SLURM_PORT_BASE + _int(environ, "SLURM_JOB_ID") % _SLURM_PORT_SPAN
        return DistributedEnv(
            source="slurm",
            rank=_int(environ, "SLURM_PROCID"),
            local_rank=_int(environ, "SLURM_LOCALID"),
            world_size=_int(environ, "SLURM_STEP_NUM_TASKS"),
            local_world_size=_tasks_on_node(
                environ.get("SLURM_STEP_TASKS_PER_NODE", environ.get("SLURM_TASKS_PER_NODE", "")),
                int(environ.get("SLURM_NODEID", "0")),
            ),
            master_addr=addr,
            master_port=int(port),
        )
    return None


def check_launch_args(args, defaults: Dict[str, object], env: DistributedEnv) -> None:
    """Reject detectron2's launch flags when torchrun / srun already started the processes.

    Args:
        args: the parsed command line.
        defaults: the parser's defaults of ``num_gpus``, ``num_machines``, ``machine_rank`` and
            ``dist_url``.
        env: the detected layout.

    Raises:
        SystemExit: naming every flag to drop.
    """
    owner = {
        "torchrun": ("torchrun", "--nproc_per_node", "--nnodes", "--rdzv-endpoint"),
        "slurm": ("srun", "--ntasks-per-node", "--nodes", "the first node of the step"),
    }[env.source]
    what = {
        "num_gpus": f"{owner[1]} sets the processes per machine",
        "num_machines": f"{owner[2]} sets the machines",
        "machine_rank": f"{owner[0]} sets each process's rank",
        "dist_url": f"the rendezvous is {owner[3]} (MASTER_ADDR:MASTER_PORT)",
    }
    bad = [
        f"--{key.replace('_', '-')} ({reason})"
        for key, reason in what.items()
        if getattr(args, key) != defaults[key]
    ]
    if bad:
        raise SystemExit(
            f"{owner[0]} started this process (rank {env.rank} of {env.world_size}): drop "
            + "; ".join(bad)
            + ". Each process it starts is one training process."
        )


def _init_external(env: DistributedEnv, timeout=DEFAULT_TIMEOUT) -> None:
    """What detectron2's ``launch`` does in each worker, for a process started by torchrun/srun."""
    os.environ.setdefault("MASTER_ADDR", env.master_addr)
    os.environ.setdefault("MASTER_PORT", str(env.master_port))
    has_gpu = torch.cuda.is_available()
    if has_gpu:
        if env.local_world_size > torch.cuda.device_count():
            raise RuntimeError(
                f"{env.local_world_size} processes on this machine but process {env.rank} sees "
                f"only {torch.cuda.device_count()} GPUs: each process uses GPU LOCAL_RANK "
                "(detectron2 wraps the model in DDP on that device), so every process of a "
                "machine must see all its GPUs (SLURM: --gpus-per-node, not --gpus-per-task)"
            )
        torch.cuda.set_device(env.local_rank)  # before NCCL creates its communicators
    dist.init_process_group(
        backend="nccl" if has_gpu else "gloo",
        init_method="env://",
        rank=env.rank,
        world_size=env.world_size,
        timeout=timeout,
    )
    comm.create_local_process_group(env.local_world_size)
    comm.synchronize()


def _forward_signals_to_workers() -> None:
    """Under ``launch``: a preemption signal sent to the parent only reaches the workers too."""

    def forward(signum, frame):
        for child in mp.active_children():
            if child.pid is not None:
                os.kill(child.pid, signum)

    for sig in PREEMPTION_SIGNALS:
        signal.signal(sig, forward)


def launch_from_args(main_func: Callable, args, defaults: Dict[str, object]):
    """Run ``main_func(args)`` in every training process of the job.

    Args:
        main_func: the per-process entry point (called with ``args``).
        args: the parsed detectron2 command line (``default_argument_parser``).
        defaults: the parser's defaults of ``num_gpus``, ``num_machines``, ``machine_rank``,
            ``dist_url`` (to tell flags given on the command line apart).

    Returns:
        ``main_func``'s result in single-process and torchrun / srun runs, None under ``launch``.

    Raises:
        SystemExit: contradicting launch flags, or status :data:`PREEMPTED_EXIT_CODE` when the
            workers of a ``launch`` run stopped for a preemption signal.
    """
    env = detect_distributed_env()
    if env is not None:
        check_launch_args(args, defaults, env)
        logger.info("Started by %s: process %d of %d", env.source, env.rank, env.world_size)
        if env.world_size > 1:
            _init_external(env)
        return main_func(args)
    world_size = args.num_gpus * args.num_machines
    if world_size > 1:
        _forward_signals_to_workers()
    try:
        return launch(
            main_func,
            args.num_gpus,
            num_machines=args.num_machines,
            machine_rank=args.machine_rank,
            dist_url=args.dist_url,
            args=(args,),
        )
    except mp.ProcessExitedException as e:
        if e.exit_code == PREEMPTED_EXIT_CODE:
            raise TrainingPreempted("a worker process stopped for preemption") from None
        raise
