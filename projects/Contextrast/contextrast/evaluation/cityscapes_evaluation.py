"""detectron2's official Cityscapes sem-seg evaluator, with its results under their own key and,
on request, its label-id PNGs kept: the files the Cityscapes test server takes."""

import glob
import logging
import os
import types
from collections import OrderedDict
from typing import Optional

import numpy as np
from detectron2.evaluation import CityscapesSemSegEvaluator
from detectron2.utils import comm

__all__ = ["CITYSCAPES_RESULTS_KEY", "CityscapesLabelIdEvaluator"]

logger = logging.getLogger(__name__)

# Key of the official numbers in the evaluation results. detectron2's evaluator returns them
# under "sem_seg", the key SemSegEvaluator uses too, and detectron2's DatasetEvaluators refuses
# two evaluators with one key.
CITYSCAPES_RESULTS_KEY = "cityscapes_sem_seg"


class _NumpyWithIn1d:
    """numpy as cityscapesScripts 2.3.0 (the latest release) uses it: its pixel-level evaluation
    calls ``np.in1d``, removed in numpy 2.4 (upstream fix not released:
    mcordts/cityscapesScripts#196). ``np.isin(...).ravel()`` is what ``in1d`` returned."""

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def in1d(ar1, ar2, assume_unique=False, invert=False):
        return np.isin(ar1, ar2, assume_unique=assume_unique, invert=invert).ravel()


def _patch_numpy_of_official_script() -> None:
    """Give the official evaluation module (only it) an ``np`` with ``in1d`` on numpy >= 2.4."""
    if hasattr(np, "in1d"):
        return
    # Imported where detectron2's evaluate() imports it, after the process set its environment.
    import cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling as cityscapes_eval

    if not isinstance(cityscapes_eval.np, _NumpyWithIn1d):
        cityscapes_eval.np = _NumpyWithIn1d()


class CityscapesLabelIdEvaluator(CityscapesSemSegEvaluator):
    """``CityscapesSemSegEvaluator``: cityscapesScripts' ``evalPixelLevelSemanticLabeling`` on
    the dataset's ``*_gtFine_labelIds.png`` (IoU, iIoU and their category averages, in %).

    Like detectron2's, it writes one ``<city>_<seq>_<frame>_leftImg8bit_pred.png`` per image
    holding Cityscapes label ids (train ids mapped back with cityscapesScripts' table), all
    processes on one machine into one folder. Two differences: the results come under
    :data:`CITYSCAPES_RESULTS_KEY`, and with ``label_id_dir`` the PNGs go there and stay (the
    folder is cleared of a previous evaluation's ``*_pred.png`` first); without it they go to a
    temporary folder deleted after scoring, as in detectron2.

    Args:
        dataset_name: a dataset with detectron2's Cityscapes metadata (``gt_dir``).
        label_id_dir: folder that keeps the PNGs, or None.
    """

    def __init__(self, dataset_name: str, label_id_dir: Optional[str] = None):
        super().__init__(dataset_name)
        self._label_id_dir = label_id_dir

    def reset(self):
        if self._label_id_dir is None:
            super().reset()
            return
        if comm.get_local_size() != comm.get_world_size():
            raise RuntimeError(
                "the Cityscapes evaluation writes its predictions into one local folder: it does "
                "not run across machines"
            )
        if comm.is_main_process():
            os.makedirs(self._label_id_dir, exist_ok=True)
            for path in glob.glob(os.path.join(self._label_id_dir, "*_pred.png")):
                os.remove(path)
        comm.synchronize()
        self._temp_dir = os.path.abspath(self._label_id_dir)
        # The parent's evaluate() ends with self._working_dir.cleanup(): a no-op keeps the files.
        self._working_dir = types.SimpleNamespace(name=self._temp_dir, cleanup=lambda: None)
        logger.info("Writing Cityscapes label-id predictions to %s", self._temp_dir)

    def evaluate(self):
        """Score the written PNGs with cityscapesScripts (main process only).

        Returns:
            ``{"cityscapes_sem_seg": {"IoU", "iIoU", "IoU_sup", "iIoU_sup"}}`` in percent on the
            main process, None on the others.
        """
        if comm.is_main_process():
            _patch_numpy_of_official_script()
        results = super().evaluate()
        if results is None:
            return None
        if self._label_id_dir is not None:
            logger.info("Cityscapes label-id predictions kept in %s", self._temp_dir)
        return OrderedDict({CITYSCAPES_RESULTS_KEY: results["sem_seg"]})
