"""Dataset registration: catalog names, metadata and class tables; DETECTRON2_DATASETS is read
when the datasets are loaded, and importing without data is lazy."""

import json
import os
import subprocess
import sys
from pathlib import Path

from detectron2.data import DatasetCatalog, MetadataCatalog
from helpers.datasets import CATALOG, OURS

import contextrast.data  # noqa: F401  (registration)
from contextrast.data.datasets.coco_stuff import COCO_STUFF_171
from contextrast.data.datasets.common import voc_colormap
from contextrast.data.datasets.pascal_context import PASCAL_CONTEXT_59


def test_catalog_names_and_metadata():
    for name, num_classes, evaluator_type, _ in CATALOG:
        assert name in DatasetCatalog.list(), name
        meta = MetadataCatalog.get(name)
        assert len(meta.stuff_classes) == num_classes, name
        assert meta.ignore_label == 255 and meta.evaluator_type == evaluator_type, name
    for name in OURS:
        meta = MetadataCatalog.get(name)
        assert len(meta.stuff_colors) == len(meta.stuff_classes), name
        assert len(set(map(tuple, meta.stuff_colors))) == len(meta.stuff_colors), name
        assert len(set(meta.stuff_classes)) == len(meta.stuff_classes), name
    camvid = MetadataCatalog.get("camvid_train")
    assert camvid.stuff_classes[0] == "Sky" and camvid.stuff_classes[10] == "Bicyclist"
    assert camvid.stuff_colors[3] == [128, 64, 128]  # Road, the SegNet colour
    lut = camvid.label_lut
    # The SegNet release: 0..10 classes, 11 void (ignored); 12..255 cannot occur (-1: an error).
    assert len(lut) == 256 and list(lut[:11]) == list(range(11)) and lut[11] == 255
    assert set(lut[12:]) == {-1}
    # The converted datasets store train ids: no LUT, so the mapper rejects unconverted files.
    assert MetadataCatalog.get("pascal_context_59_sem_seg_train").get("label_lut") is None
    coco = MetadataCatalog.get("coco_stuff_10k_sem_seg_train")
    assert coco.stuff_classes[79] == "toothbrush" and coco.stuff_classes[80] == "banner"
    assert coco.stuff_dataset_id_to_contiguous_id[182] == 170


def test_class_tables():
    assert [name for name, _ in PASCAL_CONTEXT_59][:3] == ["aeroplane", "bag", "bed"]
    raw_ids = [raw_id for _, raw_id in PASCAL_CONTEXT_59]
    assert len(set(raw_ids)) == 59 and raw_ids == sorted(raw_ids) and max(raw_ids) <= 459
    coco_ids = [cid for cid, _, _ in COCO_STUFF_171]
    unused = {12, 26, 29, 30, 45, 66, 68, 69, 71, 83, 91}
    assert coco_ids == [i for i in range(1, 183) if i not in unused]
    assert voc_colormap(4) == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0]]


_CATALOG_SCRIPT = """
import json, sys
import contextrast.data
from detectron2.data import DatasetCatalog
out = {}
for name in json.loads(sys.argv[1]):
    if name not in DatasetCatalog.list():
        out[name] = "not registered"
        continue
    try:
        records = DatasetCatalog.get(name)
        out[name] = {"files": [r["file_name"] for r in records],
                     "labels": [r["sem_seg_file_name"] for r in records],
                     "keys": sorted(set().union(*(r.keys() for r in records)))}
    except FileNotFoundError as e:
        out[name] = "FileNotFoundError: " + str(e)
print(json.dumps(out))
"""


def _catalog_in_subprocess(root: Path, names):
    """Import the registration in a fresh interpreter with ``DETECTRON2_DATASETS=root``."""
    env = dict(os.environ, DETECTRON2_DATASETS=str(root))
    result = subprocess.run(
        [sys.executable, "-c", _CATALOG_SCRIPT, json.dumps(names)],
        env=env,
        cwd=str(root.parent),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_registration_reads_detectron2_datasets(fake_root):
    """Every name, detectron2's included, loads the fake tree found via DETECTRON2_DATASETS."""
    counts = {name: count for name, *_, count in CATALOG}
    counts["camvid_test"] = 1  # registered because camvid/test/ exists in this root
    out = _catalog_in_subprocess(fake_root, list(counts))
    for name, count in counts.items():
        assert isinstance(out[name], dict), (name, out[name])
        assert len(out[name]["files"]) == count, name
        for path in out[name]["files"] + out[name]["labels"]:
            assert path.startswith(str(fake_root)) and os.path.isfile(path), (name, path)
    for name in OURS + ["camvid_test"]:
        assert out[name]["keys"] == ["file_name", "height", "sem_seg_file_name", "width"], name
    labels = out["cityscapes_fine_sem_seg_val"]["labels"]
    assert all(path.endswith("_gtFine_labelTrainIds.png") for path in labels)


def test_import_without_data_is_lazy(tmp_path):
    missing = tmp_path / "no_such_root"
    out = _catalog_in_subprocess(missing, OURS + ["camvid_test"])
    assert out["camvid_test"] == "not registered"  # no test/ folder at registration time
    for name in OURS:
        message = out[name]
        assert message.startswith("FileNotFoundError"), (name, message)
        assert "DETECTRON2_DATASETS" in message and str(missing) in message, message
        assert "Expected tree" in message, message
