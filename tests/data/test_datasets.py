"""Dataset registration: fake trees in every layout, the prepare scripts, and the real CamVid."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets.cityscapes import load_cityscapes_semantic
from detectron2.data.datasets.coco import load_sem_seg
from PIL import Image

import contextrast.data  # noqa: F401  (registration)
from contextrast.config import get_contextrast_cfg
from contextrast.data.datasets.camvid import load_camvid
from contextrast.data.datasets.coco_stuff import COCO_STUFF_171, load_coco_stuff_10k
from contextrast.data.datasets.common import voc_colormap
from contextrast.data.datasets.pascal_context import PASCAL_CONTEXT_59, load_pascal_context_59
from contextrast.data.mapper import SemSegDatasetMapper, load_sem_seg_label

REPO = Path(__file__).resolve().parents[2]
H, W = 30, 40

# (registered name, number of classes, evaluator type, records in the fake tree below)
CATALOG = [
    ("camvid_train", 11, "sem_seg", 3),
    ("camvid_val", 11, "sem_seg", 2),
    ("pascal_context_59_sem_seg_train", 59, "sem_seg", 3),
    ("pascal_context_59_sem_seg_val", 59, "sem_seg", 2),
    ("coco_stuff_10k_sem_seg_train", 171, "sem_seg", 3),
    ("coco_stuff_10k_sem_seg_test", 171, "sem_seg", 1),
    ("cityscapes_fine_sem_seg_train", 19, "cityscapes_sem_seg", 2),
    ("cityscapes_fine_sem_seg_val", 19, "cityscapes_sem_seg", 1),
    ("ade20k_sem_seg_train", 150, "sem_seg", 2),
    ("ade20k_sem_seg_val", 150, "sem_seg", 1),
]
OURS = [name for name, *_ in CATALOG[:6]]


def _image(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.RandomState(seed).randint(0, 256, (H, W, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def _label(path: Path, values) -> np.ndarray:
    """Write a label PNG whose pixels cycle through ``values`` (so every value is present)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    label = np.resize(np.asarray(values, dtype=np.uint8), H * W).reshape(H, W)
    Image.fromarray(label).save(path)
    return label


def _mat(path: Path, key: str, values) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(
        path, {key: np.resize(np.asarray(values, dtype=np.uint16), H * W).reshape(H, W)}
    )


def _script(name: str):
    """Import datasets/<name>.py (a script folder, not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "datasets" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Raw values written into the fake raw annotations, and the train ids they must become.
PC_RAW = [0, 2, 284, 458, 1, 459]  # background, aeroplane, person, wood, accordion, 459th class
PC_EXPECTED = [255, 0, 36, 58, 255, 255]
# unlabeled, person, unused, toothbrush, unused, banner, wood
COCO_RAW = [0, 1, 12, 90, 91, 92, 182]
COCO_EXPECTED = [255, 0, 255, 79, 255, 80, 170]


def _build_pascal_context_raw(voc: Path, train_ids, val_ids) -> None:
    for i, image_id in enumerate(train_ids + val_ids):
        _image(voc / "JPEGImages" / f"{image_id}.jpg", i)
        _mat(voc / "trainval" / f"{image_id}.mat", "LabelMap", PC_RAW)
    _image(voc / "JPEGImages" / "2010_009999.jpg", 99)  # an unannotated (test) image: not a record
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    (voc / "ImageSets" / "Main" / "train.txt").write_text("\n".join(train_ids) + "\n")
    (voc / "ImageSets" / "Main" / "val.txt").write_text("\n".join(val_ids) + "\n")
    names = {raw_id: f"class{raw_id}" for raw_id in range(1, 460)}
    names.update({raw_id: name for name, raw_id in PASCAL_CONTEXT_59})
    (voc / "labels.txt").write_text("".join(f"{k}: {v}\n" for k, v in names.items()))


def _build_coco_stuff_raw(base: Path, train_names, test_names) -> None:
    for i, name in enumerate(train_names + test_names):
        _image(base / "images" / f"{name}.jpg", 10 + i)
        _mat(base / "annotations" / f"{name}.mat", "S", COCO_RAW)
    (base / "imageLists").mkdir(parents=True)
    (base / "imageLists" / "train.txt").write_text("\n".join(train_names) + "\n")
    (base / "imageLists" / "test.txt").write_text("\n".join(test_names) + "\n")


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory) -> Path:
    """Datasets root in every layout; PASCAL-Context, COCO-Stuff labels from prepare scripts."""
    root = tmp_path_factory.mktemp("datasets")
    camvid = root / "camvid"
    for split, image_dir, label_dir, n in [
        ("train", "train", "trainannot", 3),
        ("val", "val", "valannot", 2),
        ("test", "test", "testannot", 1),
    ]:
        for i in range(n):
            _image(camvid / image_dir / f"0001TP_{split}{i}.png", i)
            _label(camvid / label_dir / f"0001TP_{split}{i}.png", range(12))

    voc = root / "VOCdevkit" / "VOC2010"
    _build_pascal_context_raw(
        voc, ["2008_000002", "2008_000003", "2008_000007"], ["2008_000008", "2008_000009"]
    )
    _script("prepare_pascal_context_59").main(["--voc-root", str(voc), "--workers", "1"])

    coco = root / "coco_stuff_10k"
    train_names = [f"COCO_train2014_00000000000{i}" for i in range(3)]
    _build_coco_stuff_raw(coco, train_names, ["COCO_val2014_000000000042"])
    _script("prepare_coco_stuff_10k").main(["--root", str(coco), "--workers", "1"])

    for split, city, n in [("train", "aachen", 2), ("val", "frankfurt", 1)]:
        for i in range(n):
            stem = f"{city}_000000_00001{i}"
            _image(
                root / "cityscapes" / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", i
            )
            gt = root / "cityscapes" / "gtFine" / split / city
            _label(gt / f"{stem}_gtFine_labelIds.png", range(34))
            _label(gt / f"{stem}_gtFine_instanceIds.png", [0])
            _label(gt / f"{stem}_gtFine_labelTrainIds.png", list(range(19)) + [255])
            (gt / f"{stem}_gtFine_polygons.json").write_text(
                json.dumps({"imgHeight": H, "imgWidth": W, "objects": []})
            )

    ade = root / "ADEChallengeData2016"
    for split, n in [("training", 2), ("validation", 1)]:
        for i in range(n):
            _image(ade / "images" / split / f"ADE_{split}_0000000{i}.jpg", i)
            _label(
                ade / "annotations_detectron2" / split / f"ADE_{split}_0000000{i}.png",
                list(range(150)) + [255],
            )
    return root


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
    assert len(lut) == 256 and list(lut[:11]) == list(range(11)) and set(lut[11:]) == {255}
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


def test_camvid_fake_tree(fake_root):
    for split, count in [("train", 3), ("val", 2), ("test", 1)]:
        records = load_camvid(str(fake_root), split)
        assert len(records) == count
        assert [r["file_name"] for r in records] == sorted(r["file_name"] for r in records)
        for r in records:
            assert set(r) == {"file_name", "sem_seg_file_name", "height", "width"}
            assert (r["height"], r["width"]) == (H, W)
            assert Path(r["file_name"]).parent.name == split
            assert Path(r["sem_seg_file_name"]).parent.name == f"{split}annot"
            assert Path(r["file_name"]).name == Path(r["sem_seg_file_name"]).name


def test_prepare_pascal_context_59_values_and_loader(fake_root):
    voc = fake_root / "VOCdevkit" / "VOC2010"
    for split, count in [("train", 3), ("val", 2)]:
        records = load_pascal_context_59(str(fake_root), split)
        assert len(records) == count
        for r in records:
            assert Path(r["file_name"]).parent == voc / "JPEGImages"
            assert (
                Path(r["sem_seg_file_name"]).parent
                == voc / "annotations_detectron2" / f"pc59_{split}"
            )
            assert (r["height"], r["width"]) == (H, W)
            label = Image.open(r["sem_seg_file_name"])
            assert label.mode == "L"
            expected = np.resize(np.asarray(PC_EXPECTED, dtype=np.uint8), H * W).reshape(H, W)
            np.testing.assert_array_equal(np.asarray(label), expected)
    # Records follow the converted split, not the shared JPEGImages folder.
    assert [Path(r["file_name"]).stem for r in records] == ["2008_000008", "2008_000009"]


def test_prepare_coco_stuff_10k_values_and_loader(fake_root):
    base = fake_root / "coco_stuff_10k"
    for split, count in [("train", 3), ("test", 1)]:
        records = load_coco_stuff_10k(str(fake_root), split)
        assert len(records) == count
        for r in records:
            assert Path(r["file_name"]).parent == base / "images"
            assert Path(r["sem_seg_file_name"]).parent == base / "annotations_detectron2" / split
            expected = np.resize(np.asarray(COCO_EXPECTED, dtype=np.uint8), H * W).reshape(H, W)
            np.testing.assert_array_equal(np.asarray(Image.open(r["sem_seg_file_name"])), expected)
    assert Path(records[0]["file_name"]).stem == "COCO_val2014_000000000042"


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


def _camvid_tree(root: Path, n_images=2, n_labels=2) -> Path:
    (root / "camvid" / "train").mkdir(parents=True)
    for i in range(n_images):
        _image(root / "camvid" / "train" / f"a{i}.png", i)
    (root / "camvid" / "trainannot").mkdir(parents=True, exist_ok=True)
    for i in range(n_labels):
        _label(root / "camvid" / "trainannot" / f"a{i}.png", [0])
    return root


def _error(fn, *args) -> str:
    with pytest.raises(FileNotFoundError) as info:
        fn(*args)
    message = str(info.value)
    assert "DETECTRON2_DATASETS" in message and "Expected tree" in message, message
    return message


@pytest.mark.parametrize(
    "loader, split, tree_part",
    [
        (load_camvid, "train", "trainannot/"),
        (load_pascal_context_59, "val", "annotations_detectron2/pc59_val"),
        (load_coco_stuff_10k, "test", "imageLists/{train,test}.txt"),
    ],
)
def test_missing_root_and_split(tmp_path, loader, split, tree_part):
    missing = tmp_path / "missing"
    message = _error(loader, str(missing), split)
    assert f"'{missing}'" in message and tree_part in message
    tmp_path.joinpath("empty").mkdir()
    message = _error(loader, str(tmp_path / "empty"), split)
    assert "split folder not found" in message and str(tmp_path / "empty") in message


def test_empty_split_and_missing_partner(tmp_path):
    root = _camvid_tree(tmp_path / "empty", n_images=0, n_labels=0)
    assert "empty split" in _error(load_camvid, str(root), "train")

    root = _camvid_tree(tmp_path / "unpaired", n_images=2, n_labels=1)
    message = _error(load_camvid, str(root), "train")
    image = root / "camvid" / "train" / "a1.png"
    label = root / "camvid" / "trainannot" / "a1.png"
    assert f"image '{image}' has no label file" in message and f"'{label}'" in message

    voc = tmp_path / "pc" / "VOCdevkit" / "VOC2010"
    _image(voc / "JPEGImages" / "2008_000001.jpg", 0)
    _label(voc / "annotations_detectron2" / "pc59_train" / "2008_000001.png", [0])
    _label(voc / "annotations_detectron2" / "pc59_train" / "2008_000005.png", [0])
    message = _error(load_pascal_context_59, str(tmp_path / "pc"), "train")
    assert str(voc / "annotations_detectron2" / "pc59_train" / "2008_000005.png") in message
    assert str(voc / "JPEGImages" / "2008_000005.jpg") in message


def test_prepare_scripts_reject_bad_input(tmp_path):
    prepare_pc = _script("prepare_pascal_context_59")
    with pytest.raises(FileNotFoundError, match="input folder not found.*DETECTRON2_DATASETS"):
        prepare_pc.main(["--voc-root", str(tmp_path / "no_voc")])
    voc = tmp_path / "VOC2010"
    _build_pascal_context_raw(voc, ["2008_000002"], ["2008_000008"])
    _mat(voc / "trainval" / "2008_000008.mat", "LabelMap", [0, 460])  # beyond the 459 classes
    with pytest.raises(ValueError, match="2008_000008.mat.*0..460.*expected 0..459"):
        prepare_pc.main(["--voc-root", str(voc), "--workers", "1", "--splits", "val"])
    (voc / "trainval" / "2008_000002.mat").unlink()
    with pytest.raises(FileNotFoundError, match="2008_000002.mat"):
        prepare_pc.main(["--voc-root", str(voc), "--workers", "1", "--splits", "train"])
    (voc / "labels.txt").write_text("2: bicycle\n")
    with pytest.raises(ValueError, match="labels.txt.*2: expected 'aeroplane', found 'bicycle'"):
        prepare_pc.main(["--voc-root", str(voc), "--workers", "1"])

    prepare_coco = _script("prepare_coco_stuff_10k")
    base = tmp_path / "coco_stuff_10k"
    _build_coco_stuff_raw(base, ["COCO_train2014_000000000001"], ["COCO_val2014_000000000002"])
    scipy.io.savemat(
        base / "annotations" / "COCO_val2014_000000000002.mat", {"L": np.zeros((2, 2))}
    )
    with pytest.raises(ValueError, match="has no variable 'S'"):
        prepare_coco.main(["--root", str(base), "--workers", "1", "--splits", "test"])
    _mat(base / "annotations" / "COCO_val2014_000000000002.mat", "S", [183])
    with pytest.raises(ValueError, match="expected 0..182"):
        prepare_coco.main(["--root", str(base), "--workers", "1", "--splits", "test"])
    assert not list((base / "annotations_detectron2" / "test").iterdir())  # nothing half-written


def test_real_camvid(camvid_root):
    root = os.path.dirname(camvid_root)
    assert os.path.basename(camvid_root) == "camvid"
    lut = np.asarray(MetadataCatalog.get("camvid_train").label_lut, dtype=np.uint8)
    for split, count in [("train", 367), ("val", 101)]:
        records = load_camvid(root, split)
        assert len(records) == count
        assert all((r["height"], r["width"]) == (360, 480) for r in records)
        present = np.zeros(256, dtype=bool)
        for r in records:
            present[np.asarray(Image.open(r["sem_seg_file_name"])).ravel()] = True
        raw_values = set(np.flatnonzero(present).tolist())
        assert raw_values <= set(range(12)), (split, raw_values)
        if split == "train":
            assert raw_values == set(range(12))  # every class and void occur in train
        assert set(lut[sorted(raw_values)].tolist()) <= set(range(11)) | {255}


def _mapper(dataset_name: str, num_classes: int) -> SemSegDatasetMapper:
    cfg = get_contextrast_cfg()
    cfg.INPUT.FORMAT = "RGB"
    cfg.INPUT.MIN_SIZE_TRAIN = (24, 36)
    cfg.INPUT.MAX_SIZE_TRAIN = 100
    cfg.INPUT.CROP.ENABLED = True
    cfg.INPUT.CROP.TYPE = "absolute"
    cfg.INPUT.CROP.SIZE = (16, 16)
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = num_classes
    cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE = 255
    return SemSegDatasetMapper(cfg, is_train=True, dataset_name=dataset_name)


@pytest.mark.parametrize("name, num_classes", [(n, k) for n, k, *_ in CATALOG[::2]])
def test_mapper_on_one_record_per_dataset(fake_root, name, num_classes):
    city, ade = fake_root / "cityscapes", fake_root / "ADEChallengeData2016"
    load = {
        "camvid_train": lambda: load_camvid(str(fake_root), "train"),
        "pascal_context_59_sem_seg_train": lambda: load_pascal_context_59(str(fake_root), "train"),
        "coco_stuff_10k_sem_seg_train": lambda: load_coco_stuff_10k(str(fake_root), "train"),
        "cityscapes_fine_sem_seg_train": lambda: load_cityscapes_semantic(
            str(city / "leftImg8bit" / "train"), str(city / "gtFine" / "train")
        ),
        "ade20k_sem_seg_train": lambda: load_sem_seg(
            str(ade / "annotations_detectron2" / "training"), str(ade / "images" / "training")
        ),
    }[name]
    record = load()[0]
    out = _mapper(name, num_classes)(record)
    assert out["image"].shape == (3, 16, 16)
    values = set(out["sem_seg"].unique().tolist())
    assert values <= set(range(num_classes)) | {255}, (name, values)
    if name == "camvid_train":
        # The whole label map goes through label_lut: void 11 becomes 255, classes stay.
        full = load_sem_seg_label(
            record["sem_seg_file_name"], num_classes=11, label_lut=_mapper(name, 11).label_lut
        )
        assert set(np.unique(full).tolist()) == set(range(11)) | {255}
