"""Label values: what a dataset defines as void is ignored, a value no correct file holds stops
with an error naming the file and the values (in the mapper and in the evaluator alike, both read
labels with ``load_sem_seg_label``).

Every registered dataset is checked. CamVid (the only one whose files hold raw values, through a
``label_lut``) defines 0..10 as classes and 11 as void. The others store train ids: the converted
PASCAL-Context-59 and COCO-Stuff-10k PNGs (the prepare scripts map the release's void and removed
ids to 255 and stop on ids beyond the release's 459 / 182), Cityscapes' ``labelTrainIds`` (void
classes are 255 in cityscapesScripts' output), ADE20K's ``annotations_detectron2`` (0 "other"
becomes 255) and the synthetic streets: any value other than a train id or 255 is an error.
"""

import uuid

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from helpers import demo_cfg
from helpers.datasets import CATALOG, H, W, write_label

import contextrast.data  # noqa: F401  (registration)
from contextrast.data import SemSegDatasetMapper, label_spec_from_metadata, load_sem_seg_label
from contextrast.data.datasets.camvid import camvid_metadata, load_camvid

REGISTERED = [name for name, *_ in CATALOG] + ["synth_streets_train"]


@pytest.mark.parametrize("name", REGISTERED)
def test_values_no_correct_file_holds_stop_with_the_file_named(name, tmp_path):
    num_classes, ignore, lut = label_spec_from_metadata(name)
    if lut is None:  # files hold train ids: the classes and 255
        good, bad = list(range(num_classes)) + [ignore], [num_classes, 254]
    else:
        defined = np.flatnonzero(lut >= 0)
        good, bad = defined.tolist(), np.flatnonzero(lut < 0)[[0, -1]].tolist()
    spec = dict(num_classes=num_classes, ignore_label=ignore, label_lut=lut)
    ok = tmp_path / "ok.png"
    raw = write_label(ok, good)
    label = load_sem_seg_label(str(ok), **spec)
    expected = raw if lut is None else lut[raw]
    assert np.array_equal(label, expected) and set(np.unique(label)) <= set(range(num_classes)) | {
        ignore
    }
    wrong = tmp_path / "wrong.png"
    write_label(wrong, good[:3] + bad)
    with pytest.raises(ValueError, match=f"label file {wrong}: .*{bad[0]}, {bad[1]}"):
        load_sem_seg_label(str(wrong), **spec)


@pytest.fixture
def camvid_like(fake_root):
    """The fake tree's camvid_train records under CamVid's own metadata (a fresh name)."""
    name = f"camvid_values_{uuid.uuid4().hex[:8]}"
    records = load_camvid(str(fake_root), "train")
    DatasetCatalog.register(name, lambda: records)
    MetadataCatalog.get(name).set(**camvid_metadata())
    yield name, records
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def test_camvid_void_is_ignore_and_other_values_stop_the_mapper(camvid_like, tmp_path):
    name, records = camvid_like
    cfg = demo_cfg("MODEL.SEM_SEG_HEAD.NUM_CLASSES", "11", "DATASETS.TEST", f"('{name}',)")
    mapper = SemSegDatasetMapper(cfg, is_train=False, dataset_name=name)
    raw = np.resize(np.arange(12, dtype=np.uint8), H * W).reshape(H, W)  # what the fake tree holds
    sem_seg = mapper(records[0])["sem_seg"].numpy()
    assert np.array_equal(sem_seg, np.where(raw == 11, 255, raw))  # void 11 -> ignore
    # The 32-class CamVid labels (values 0..31) in place of the 11-class ones.
    wrong = tmp_path / "0001TP_006690_L.png"
    write_label(wrong, range(32))
    with pytest.raises(
        ValueError,
        match=rf"label file {wrong}: raw values \[12, 13, .*cannot occur.*values are 0\.\.11",
    ):
        mapper(dict(records[0], sem_seg_file_name=str(wrong)))
