"""FeatureMetricsEvaluator: the paper's A, U and U_l as a detectron2 ``DatasetEvaluator``."""

import logging
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.data import MetadataCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm

from .feature_metrics import ClassFeatureStats, compute_feature_metrics

__all__ = ["FeatureMetricsEvaluator"]

logger = logging.getLogger(__name__)


class FeatureMetricsEvaluator(DatasetEvaluator):
    """Intra-class alignment A, inter-class uniformity U and neighbourhood uniformity U_l.

    Consumes the model outputs of :class:`SegmentorWithEmbeddings` (``"embeddings"``, the input of
    the head's classifier) and the mapped ground truth of the inputs (``"sem_seg"``, produced by
    the test mapper at the model's input resolution). The labels are downsampled to the
    embeddings' resolution by nearest neighbour, as Contextrast's training downsamples them to
    each layer; ignored pixels are dropped and the embeddings are L2-normalised, so the metrics
    of different models are comparable (distances lie in [0, 2]).
    See :mod:`.feature_metrics` for the definitions and the per-class sample behind A.
    """

    @configurable
    def __init__(
        self,
        *,
        num_classes: int,
        ignore_label: int = 255,
        max_samples_per_class: int = 2048,
        num_neighbours: int = 3,
        normalize_centroids: bool = False,
        class_names: Optional[Sequence[str]] = None,
        distributed: bool = True,
        seed: int = 0,
    ):
        """
        Args:
            num_classes: N.
            ignore_label: label value excluded from the metrics.
            max_samples_per_class: per-class cap of the random pixel sample used for A.
            num_neighbours: l of U_l.
            normalize_centroids: project the centroids onto the unit sphere before U / U_l
                (False: plain means of the normalised embeddings, the formula as published).
            class_names: names for the per-class ``A-<name>`` results; default class ids.
            distributed: gather the statistics of all processes before computing the metrics.
            seed: seed of the pixel sampling.
        """
        self.num_classes = num_classes
        self.ignore_label = ignore_label
        self.max_samples_per_class = max_samples_per_class
        self.num_neighbours = num_neighbours
        self.normalize_centroids = normalize_centroids
        self.class_names = (
            list(class_names) if class_names else [str(i) for i in range(num_classes)]
        )
        self.distributed = distributed
        self.seed = seed
        self.reset()

    @classmethod
    def from_config(cls, cfg, dataset_name: str, distributed: bool = True):
        meta = MetadataCatalog.get(dataset_name)
        fm = cfg.TEST.FEATURE_METRICS
        return {
            "num_classes": cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
            "ignore_label": meta.get("ignore_label", cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE),
            "max_samples_per_class": fm.MAX_PIXELS_PER_CLASS,
            "num_neighbours": fm.NUM_NEIGHBOURS,
            "normalize_centroids": fm.NORMALIZE_CENTROIDS,
            "class_names": meta.get("stuff_classes", None),
            "distributed": distributed,
        }

    def reset(self) -> None:
        self._stats = ClassFeatureStats(
            self.num_classes, self.max_samples_per_class, seed=self.seed + comm.get_rank()
        )

    def process(self, inputs: List[Dict], outputs: List[Dict]) -> None:
        """
        Args:
            inputs: mapped records, each with ``"sem_seg"``: (H, W) long labels.
            outputs: each with ``"embeddings"``: (C, h, w) features over the same image.
        """
        for record, output in zip(inputs, outputs):
            if "sem_seg" not in record:
                raise ValueError(
                    f"{record.get('file_name', 'input')}: FeatureMetricsEvaluator needs the "
                    "mapped ground truth 'sem_seg' (a test mapper on records with labels)"
                )
            if "embeddings" not in output:
                raise ValueError(
                    "no 'embeddings' in the outputs: wrap the model in SegmentorWithEmbeddings"
                )
            emb = output["embeddings"]
            labels = record["sem_seg"].to(emb.device)
            labels = F.interpolate(labels[None, None].float(), size=emb.shape[-2:], mode="nearest")
            labels = labels.flatten().long()
            valid = labels != self.ignore_label
            if not valid.any():
                continue
            feats = F.normalize(emb.flatten(1).t()[valid].float(), dim=1)  # (P, C)
            self._stats.update(feats, labels[valid])

    def evaluate(self) -> Optional[Dict[str, Dict[str, float]]]:
        """
        Returns:
            On the main process ``{"feature_metrics": {"A", "U", "U_l", "l", "num_classes",
            "A-<class>"...}}``; None elsewhere.
        """
        stats = self._stats
        if self.distributed:
            comm.synchronize()
            states = comm.gather(self._stats.state(), dst=0)
            if not comm.is_main_process():
                return None
            device = self._stats.feats.device if self._stats.feats is not None else "cpu"
            stats = ClassFeatureStats(self.num_classes, self.max_samples_per_class)
            for state in states:
                stats.merge_state(state)
            stats.to(device)  # the pairwise distances of A are cheaper on the GPU
        if stats.sums is None:
            logger.warning("FeatureMetricsEvaluator: no labelled pixels; nothing to report")
            return {}
        metrics = compute_feature_metrics(stats, self.num_neighbours, self.normalize_centroids)
        present = metrics["present"].cpu()
        l_used = min(self.num_neighbours, max(int(present.sum()) - 1, 0))
        res = OrderedDict(
            A=metrics["A"],
            U=metrics["U"],
            U_l=metrics["U_l"],
            l=float(l_used),
            num_classes=float(present.sum()),
        )
        per_class = metrics["per_class_A"].cpu()
        for c in torch.nonzero(present).flatten().tolist():
            res[f"A-{self.class_names[c]}"] = float(per_class[c])
        return {"feature_metrics": res}
