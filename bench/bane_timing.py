"""Inputs, references and timing helpers of ``bench/bane.py``: synthetic error maps, scipy's
distance transform map by map, implementations loaded from files, interleaved timing."""

import importlib.util
import statistics
import time
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

__all__ = [
    "IGNORE_VALUE",
    "realistic_case",
    "scipy_edt2",
    "load_edt",
    "load_bane",
    "interleaved",
    "with_threads",
    "label_map",
    "profile_table",
]

# Ignore label of the selections (the synthetic maps have no ignored pixels).
IGNORE_VALUE = 255


def realistic_case(
    *, batch: int, num_classes: int, size: Tuple[int, int], regions: int = 40, block: int = 8,
    flip: float = 0.1, seed: int = 0,
) -> Tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """(pred, gt), each (B, H, W) long: Voronoi ground truth and a blocky prediction of it."""
    g = torch.Generator().manual_seed(seed)
    h, w = size
    ys = torch.rand(batch, regions, generator=g) * h
    xs = torch.rand(batch, regions, generator=g) * w
    classes = torch.randint(0, num_classes, (batch, regions), generator=g)
    yy, xx = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    gt = torch.empty(batch, h, w, dtype=torch.long)
    for i in range(batch):  # one image at a time keeps the (regions, H, W) distances small
        d = (yy[None] - ys[i, :, None, None]) ** 2 + (xx[None] - xs[i, :, None, None]) ** 2
        gt[i] = classes[i][d.argmin(0)]
    coarse = gt[:, block // 2 :: block, block // 2 :: block]
    noise = torch.rand(coarse.shape, generator=g) < flip
    coarse = torch.where(noise, torch.randint(0, num_classes, coarse.shape, generator=g), coarse)
    pred = coarse.repeat_interleave(block, 1).repeat_interleave(block, 2)[:, :h, :w]
    return pred.contiguous(), gt


def scipy_edt2(maps: np.ndarray) -> np.ndarray:
    """Squared EDT of (M, H, W) bool maps with scipy, map by map (rounded: exact integers)."""
    from scipy import ndimage

    out = np.empty(maps.shape, dtype=np.float64)
    for i, m in enumerate(maps):
        out[i] = ndimage.distance_transform_edt(m) ** 2
    return np.round(out)


def load_edt(path: str) -> Callable:
    """``squared_distance_transform`` of a standalone copy of ``edt.py``."""
    spec = importlib.util.spec_from_file_location("baseline_edt", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.squared_distance_transform


def load_bane(path: str) -> Callable:
    """``select_boundary_negatives`` of a standalone copy of ``bane.py`` (e.g. an older one)."""
    spec = importlib.util.spec_from_file_location("contextrast.modeling.contrast._old_bane", path)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "contextrast.modeling.contrast"  # its relative imports resolve
    spec.loader.exec_module(module)
    return module.select_boundary_negatives


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def interleaved(fns: Dict[str, Callable[[], None]], rounds: int, device: str) -> Dict[str, Dict]:
    """Median wall / CPU ms of every function over interleaved rounds (first call = warm-up)."""
    for fn in fns.values():
        fn()
    _sync(device)
    wall: Dict[str, List[float]] = {k: [] for k in fns}
    cpu: Dict[str, List[float]] = {k: [] for k in fns}
    names = list(fns)
    for r in range(rounds):
        for k in names[r % len(names) :] + names[: r % len(names)]:
            _sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            fns[k]()
            _sync(device)
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
    return {
        k: {
            "wall_ms": 1000 * statistics.median(wall[k]),
            "cpu_ms": 1000 * statistics.median(cpu[k]),
        }
        for k in names
    }


def with_threads(fn: Callable, threads: Optional[int]) -> Callable[[], None]:
    """``fn`` run with ``threads`` intra-op threads (None: leave as is)."""

    def call():
        if threads is None:
            return fn()
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return fn()
        finally:
            torch.set_num_threads(before)

    return call


def label_map(maps: torch.Tensor) -> torch.Tensor:
    """(B, N, H, W) disjoint bool maps -> (B, H, W) label map, N where no map holds the pixel."""
    n = maps.shape[1]
    none = torch.full(maps[:, 0].shape, n, dtype=torch.long)
    return torch.where(maps.any(1), maps.long().argmax(1), none)


def profile_table(fn: Callable[[], None], device: str) -> str:
    """``torch.profiler`` table (top 15 ops by self time) of one call."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=activities) as prof:
        fn()
        _sync(device)
    key = "self_cuda_time_total" if device == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=15)
