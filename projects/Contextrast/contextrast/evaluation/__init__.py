"""Evaluation: sem-seg evaluators that read labels as training does, multi-scale + flip test-time
augmentation, the paper's feature-level metrics (A, U, U_l), prediction panels, and the set-up
of the evaluation tools."""

from .cityscapes_evaluation import CITYSCAPES_RESULTS_KEY, CityscapesLabelIdEvaluator
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
    load_eval_model,
)
from .sem_seg_evaluation import build_sem_seg_evaluator
from .tta import SemSegTTA
from .visualization import colorize, make_panel

__all__ = [
    "CITYSCAPES_RESULTS_KEY",
    "CityscapesLabelIdEvaluator",
    "ClassFeatureStats",
    "ClassifierInputCapture",
    "FeatureMetricsEvaluator",
    "SegmentorWithEmbeddings",
    "SemSegTTA",
    "build_eval_loader",
    "build_sem_seg_evaluator",
    "class_alignment",
    "colorize",
    "compute_feature_metrics",
    "dataset_records",
    "find_classifier",
    "inference_model",
    "inter_class_uniformity",
    "load_eval_model",
    "make_panel",
    "neighbourhood_uniformity",
]
