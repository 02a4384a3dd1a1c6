"""mIoU of deployed models on a registered dataset, next to the PyTorch model's, plus latency.

Every image of the dataset goes through the project's test mapper (the resize of evaluation)
once, then through each model in turn (in reversed order every other image), so all models see
the same inputs and share the machine's load alike: their latency ratios are meaningful even on
a busy machine. Each model call starts once the thread pools of the previous one are idle
(:func:`.benchmark.wait_for_idle_threads`: PyTorch's OpenMP threads spin for several ms after a
forward), and ONNX models should come from ``Predictor(..., spinning=False)``. Each model has its
own detectron2 ``SemSegEvaluator`` (the project's, which applies the dataset's ``label_lut``),
fed logits resized to the image as ``sem_seg_postprocess`` does in ``tools/train_net.py``.
"""

import logging
import time
from typing import Callable, Dict, Mapping

import numpy as np
import torch
from tqdm import tqdm

from ..config import load_config
from ..evaluation.inference import build_eval_loader, dataset_records
from ..evaluation.sem_seg_evaluation import build_sem_seg_evaluator
from .benchmark import wait_for_idle_threads
from .metadata import DeployMetadata
from .predictor import resize_logits

__all__ = ["config_from_metadata", "check_metadata_matches_config", "evaluate_models"]

logger = logging.getLogger(__name__)

# A model here: (1, 3, h, w) float32 0-255 input in the model's format -> (1, K, h, w) logits.
Model = Callable[[np.ndarray], np.ndarray]


def config_from_metadata(meta: DeployMetadata, dataset: str):
    """The config keys the evaluation reads, from an ONNX file's contract (no config file)."""
    return load_config(
        "",
        [
            "INPUT.FORMAT", meta.input_format,
            "INPUT.MIN_SIZE_TEST", str(meta.min_size_test),
            "INPUT.MAX_SIZE_TEST", str(meta.max_size_test),
            "MODEL.SEM_SEG_HEAD.NUM_CLASSES", str(meta.num_classes),
            "MODEL.SEM_SEG_HEAD.IGNORE_VALUE", str(meta.ignore_label),
            "DATASETS.TEST", f"('{dataset}',)",
            "DATALOADER.NUM_WORKERS", "0",
        ],
        device="cpu",
    )  # fmt: skip


def check_metadata_matches_config(meta: DeployMetadata, cfg, path: str) -> None:
    """Raise ValueError naming the keys where the ONNX file's contract and ``cfg`` differ."""
    pairs = {
        "INPUT.FORMAT": (meta.input_format, cfg.INPUT.FORMAT),
        "INPUT.MIN_SIZE_TEST": (meta.min_size_test, cfg.INPUT.MIN_SIZE_TEST),
        "INPUT.MAX_SIZE_TEST": (meta.max_size_test, cfg.INPUT.MAX_SIZE_TEST),
        "MODEL.SEM_SEG_HEAD.NUM_CLASSES": (meta.num_classes, cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES),
    }
    wrong = [f"{k}: {a!r} in {path}, {b!r} in the config" for k, (a, b) in pairs.items() if a != b]
    if wrong:
        raise ValueError("the ONNX file and the config disagree:\n  " + "\n  ".join(wrong))


@torch.no_grad()
def evaluate_models(
    cfg, dataset: str, models: Mapping[str, Model], *, max_images: int = 0
) -> Dict[str, Dict[str, float]]:
    """Evaluate ``models`` side by side on ``dataset``.

    Args:
        cfg: config of the evaluation (input format, test resize, classes), e.g. the training
            config or :func:`config_from_metadata`.
        dataset: registered sem-seg dataset.
        models: name -> model (see :data:`Model`), e.g. ``Predictor.forward_array``.
        max_images: evaluate the first ``max_images`` images only (0 = all).

    Returns:
        name -> {"mIoU", "fwIoU", "mACC", "pACC", "images", "median_ms", "mean_ms",
        "times_ms" (per image, in dataset order)}; the latency is of the model call alone (no
        data loading or resizing).
    """
    records = dataset_records(dataset, max_images)
    evaluators = {name: build_sem_seg_evaluator(cfg, dataset) for name in models}
    times = {name: [] for name in models}
    for evaluator in evaluators.values():
        evaluator.reset()
    # Images load in this process, between timed calls: loader workers would share the CPU with
    # whichever model is being timed.
    loader = build_eval_loader(cfg, dataset, records, num_workers=0)
    for index, inputs in enumerate(tqdm(loader, total=len(records), desc=dataset)):
        record = inputs[0]
        images = record["image"].numpy()[None].astype(np.float32)
        # Alternate the order so that running first or second (caches, clock) favours none.
        order = list(models.items()) if index % 2 == 0 else list(models.items())[::-1]
        for name, model in order:
            wait_for_idle_threads()
            start = time.perf_counter()
            logits = model(images)
            times[name].append(time.perf_counter() - start)
            sem_seg = torch.from_numpy(resize_logits(logits, record["height"], record["width"]))
            evaluators[name].process(inputs, [{"sem_seg": sem_seg}])
    results = {}
    for name, evaluator in evaluators.items():
        metrics = evaluator.evaluate()["sem_seg"]
        seconds = np.asarray(times[name])
        results[name] = {
            **{k: float(metrics[k]) for k in ("mIoU", "fwIoU", "mACC", "pACC")},
            "images": len(seconds),
            "median_ms": float(np.median(seconds) * 1e3),
            "mean_ms": float(seconds.mean() * 1e3),
            "times_ms": [float(t * 1e3) for t in seconds],
        }
    return results
