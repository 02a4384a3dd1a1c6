"""Evaluation beyond detectron2's evaluators: multi-scale + flip test-time augmentation, the
paper's feature-level metrics (A, U, U_l) and prediction panels."""

from .embeddings import ClassifierInputCapture, SegmentorWithEmbeddings, find_classifier
from .feature_evaluator import FeatureMetricsEvaluator
from .feature_metrics import (
    ClassFeatureStats,
    class_alignment,
    compute_feature_metrics,
    inter_class_uniformity,
    neighbourhood_uniformity,
)
from .inference import (
    build_eval_loader,
    dataset_records,
    inference_model,
    load_eval_config,
    load_eval_model,
)
from .tta import SemSegTTA
from .visualization import colorize, make_panel

__all__ = [
    "ClassFeatureStats",
    "ClassifierInputCapture",
    "FeatureMetricsEvaluator",
    "SegmentorWithEmbeddings",
    "SemSegTTA",
    "build_eval_loader",
    "class_alignment",
    "colorize",
    "compute_feature_metrics",
    "dataset_records",
    "find_classifier",
    "inference_model",
    "inter_class_uniformity",
    "load_eval_config",
    "load_eval_model",
    "make_panel",
    "neighbourhood_uniformity",
]
