"""Run setup for reproducible jobs: detectron2's setup, deterministic kernels, an env.txt record.

What makes two runs with the same ``SEED`` identical (see docs/running_long_jobs.md):

- detectron2's ``default_setup`` seeds the RNGs (model initialisation) and applies
  ``CUDNN_BENCHMARK``; ``config.yaml`` in ``OUTPUT_DIR`` records the full config;
- the trainer's data stream and per-iteration reseeding (``data/build.py``,
  ``engine/hooks.py``) make data, augmentation and the loss's random sampling a function of the
  seed and the iteration, independent of ``DATALOADER.NUM_WORKERS``;
- ``DETERMINISTIC True`` selects deterministic GPU kernels (cuDNN, cuBLAS, scatter/index ops);
  CPU kernels are deterministic for a fixed number of threads;
- ``env.txt`` in ``OUTPUT_DIR`` records the software and hardware (detectron2's
  ``collect_env_info``), the command line and the thread count, to compare two runs' setups.
"""

import logging
import os
import sys

import torch
from detectron2.engine import default_setup
from detectron2.utils import comm
from detectron2.utils.collect_env import collect_env_info
from detectron2.utils.logger import setup_logger

from ..config_checks import contextrast_config_warnings
from ..modeling import dry_build_model

__all__ = ["configure_determinism", "write_env_info", "contextrast_setup"]

logger = logging.getLogger(__name__)

ENV_FILE = "env.txt"


def configure_determinism(cfg) -> None:
    """Apply ``cfg.DETERMINISTIC`` to torch (call in every process, before building the model).

    Raises:
        ValueError: ``DETERMINISTIC`` together with ``CUDNN_BENCHMARK`` (benchmarking picks
            kernels by timing, which differs between runs).
    """
    if not cfg.DETERMINISTIC:
        return
    if cfg.CUDNN_BENCHMARK:
        raise ValueError("DETERMINISTIC True needs CUDNN_BENCHMARK False")
    # cuBLAS needs a fixed workspace to be deterministic; read when its handle is created.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    # warn_only: ops without a deterministic kernel (e.g. bilinear upsampling's CUDA backward)
    # warn once instead of stopping the job.
    torch.use_deterministic_algorithms(True, warn_only=True)


def write_env_info(output_dir: str, path_name: str = ENV_FILE) -> str:
    """Write the environment of this run to ``output_dir/env.txt`` (main process only).

    Returns:
        The file's path ("" on other processes).
    """
    if not comm.is_main_process() or not output_dir:
        return ""
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, path_name)
    lines = [
        f"command: {' '.join(sys.argv)}",
        f"world_size: {comm.get_world_size()}",
        f"torch_num_threads: {torch.get_num_threads()}",
        f"deterministic_algorithms: {torch.are_deterministic_algorithms_enabled()}",
        f"cudnn.benchmark: {torch.backends.cudnn.benchmark}",
        f"cudnn.deterministic: {torch.backends.cudnn.deterministic}",
        "",
        collect_env_info(),
    ]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    logger.info("Environment saved to %s", path)
    return path


def contextrast_setup(cfg, args) -> None:
    """A dry build of the model, detectron2's ``default_setup`` (logging, config.yaml, seeding),
    the project's logger, then determinism and env.txt.

    Args:
        cfg: the frozen config.
        args: the parsed command line (logged by detectron2).

    Raises:
        The model constructor's error for a config that cannot build, before anything is written
        to ``OUTPUT_DIR`` (``--resume`` must not overwrite a run's config.yaml with it).
    """
    dry_build_model(cfg)
    default_setup(cfg, args)
    # The project's own loggers ("contextrast.*") go to the console and log.txt like detectron2's.
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="contextrast")
    # load_config warned before any log file existed; the run's log.txt keeps them too.
    for warning in contextrast_config_warnings(cfg):
        logger.warning("%s", warning)
    configure_determinism(cfg)
    write_env_info(cfg.OUTPUT_DIR)
