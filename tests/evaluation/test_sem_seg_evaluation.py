"""build_sem_seg_evaluator: detectron2's SemSegEvaluator reading ground truth through the LUT."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from detectron2.config import get_cfg
from detectron2.evaluation import CityscapesSemSegEvaluator, DatasetEvaluators, SemSegEvaluator
from detectron2.projects.deeplab import add_deeplab_config
from helpers.datasets import FAKE_LUT

from contextrast.config import add_contextrast_config
from contextrast.evaluation import CityscapesLabelIdEvaluator, build_sem_seg_evaluator

# Raw label values 10/20/30 are classes 0/1/2; 11 is void (CamVid-style) -> ignore (FAKE_LUT).
GT_RAW = [
    np.array([[10, 10, 20, 20], [30, 30, 11, 11]]),
    np.array([[20, 20, 20, 30], [11, 10, 10, 30]]),
]
PRED = [
    np.array([[0, 1, 1, 1], [2, 0, 2, 0]]),
    np.array([[1, 1, 2, 2], [1, 0, 0, 2]]),
]


def make_cfg(num_classes=3):
    cfg = get_cfg()
    add_deeplab_config(cfg)
    add_contextrast_config(cfg)
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = num_classes
    return cfg


@pytest.fixture
def dataset(fake_datasets):
    """Factory registering the 2-image dataset with the raw labels above, or a variant."""

    def make(labels=GT_RAW, evaluator_type="sem_seg", lut=FAKE_LUT):
        return fake_datasets.labelled(labels, evaluator_type=evaluator_type, lut=lut)

    return make


def run(evaluator, records, preds):
    evaluator.reset()
    for record, pred in zip(records, preds):
        logits = F.one_hot(torch.as_tensor(pred), 3).permute(2, 0, 1).float()
        evaluator.process([record], [{"sem_seg": logits}])
    return evaluator.evaluate()["sem_seg"]


def test_miou_by_hand(dataset, tmp_path):
    name, records = dataset()
    evaluator = build_sem_seg_evaluator(make_cfg(), name, output_dir=str(tmp_path / "eval"))
    assert isinstance(evaluator, SemSegEvaluator)
    res = run(evaluator, records, PRED)
    # Ground truth after the LUT (x = void 11 -> ignored, its predictions do not count):
    #   image 0: [[0 0 1 1] [2 2 x x]]   prediction [[0 1 1 1] [2 0 . .]]
    #   image 1: [[1 1 1 2] [x 0 0 2]]   prediction [[1 1 2 2] [. 0 0 2]]
    # class 0: TP 3, GT 4, predicted 4 -> IoU 3 / 5
    # class 1: TP 4, GT 5, predicted 5 -> IoU 4 / 6
    # class 2: TP 3, GT 4, predicted 4 -> IoU 3 / 5
    assert res["IoU-a"] == pytest.approx(60.0)
    assert res["IoU-b"] == pytest.approx(400 / 6)
    assert res["IoU-c"] == pytest.approx(60.0)
    assert res["mIoU"] == pytest.approx((60 + 400 / 6 + 60) / 3)  # 62.22
    assert res["pACC"] == pytest.approx(1000 / 13)  # 10 of 13 labelled pixels right
    assert (tmp_path / "eval" / "sem_seg_evaluation.pth").exists()


def test_invalid_ground_truth_names_the_file(dataset):
    # Without the LUT the raw values are not train ids: the error names the file.
    name, records = dataset(lut=None)
    with pytest.raises(
        ValueError, match=f"{records[0]['sem_seg_file_name']}.*\\[10, 11, 20, 30\\]"
    ):
        run(build_sem_seg_evaluator(make_cfg(), name), records, PRED)


def test_evaluator_choice_and_config_checks(dataset):
    name, _ = dataset(evaluator_type="cityscapes_sem_seg")
    evaluator = build_sem_seg_evaluator(make_cfg(), name)
    assert isinstance(evaluator, DatasetEvaluators)
    kinds = [type(e) for e in evaluator._evaluators]
    # detectron2's official evaluator, its results under their own key ("sem_seg" is taken).
    assert kinds == [SemSegEvaluator, CityscapesLabelIdEvaluator]
    assert issubclass(CityscapesLabelIdEvaluator, CityscapesSemSegEvaluator)
    name, _ = dataset(evaluator_type="coco")
    with pytest.raises(ValueError, match=f"{name}.*evaluator_type='coco'"):
        build_sem_seg_evaluator(make_cfg(), name)
    name, _ = dataset()
    with pytest.raises(ValueError, match=f"NUM_CLASSES=19 differs .*{name}"):
        build_sem_seg_evaluator(make_cfg(num_classes=19), name)
