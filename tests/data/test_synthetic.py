"""The built-in synth_streets dataset: registration, determinism, content and the atomic cache."""

import filecmp
import os
import subprocess
import sys

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image

from contextrast.data import synthetic
from contextrast.data.synthetic_scene import CLASSES


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    """A private $CONTEXTRAST_CACHE, filled through the registered loader (first use generates)."""
    root = str(tmp_path_factory.mktemp("contextrast_cache"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CONTEXTRAST_CACHE", root)
        DatasetCatalog.get("synth_streets_train")
        yield root


def _files(root):
    return sorted(
        os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs
    )


def _labels(records):
    return np.stack([np.asarray(Image.open(r["sem_seg_file_name"])) for r in records])


def test_registration_and_records(cache_root):
    for split, count in (("train", 240), ("val", 60)):
        name = f"synth_streets_{split}"
        meta = MetadataCatalog.get(name)
        assert meta.stuff_classes == list(CLASSES)
        assert len(meta.stuff_colors) == len(CLASSES) and meta.ignore_label == 255
        assert meta.evaluator_type == "sem_seg"
        records = DatasetCatalog.get(name)
        assert len(records) == count
        root = os.path.join(cache_root, "synth_streets_v1")
        for r in records[:3] + records[-1:]:
            assert r["file_name"].startswith(os.path.join(root, "images", split))
            assert r["sem_seg_file_name"].startswith(os.path.join(root, "labels", split))
            image, label = Image.open(r["file_name"]), Image.open(r["sem_seg_file_name"])
            assert image.mode == "RGB" and label.mode == "L"
            assert image.size == label.size == (r["width"], r["height"]) == (240, 160)
        assert len({r["image_id"] for r in records}) == count


def test_same_seed_is_byte_identical_and_other_seed_differs(cache_root, tmp_path, monkeypatch):
    first = os.path.join(cache_root, "synth_streets_v1")
    assert len(_files(first)) == 2 * (240 + 60) + 1  # images, labels, manifest
    # A second generation into another cache; fewer images to save time, which also shows that
    # an image depends on (seed, split, index) only.
    monkeypatch.setattr(synthetic, "SPLITS", {"train": 40, "val": 10})
    second = synthetic.ensure_synth_streets(str(tmp_path / "again"))
    pngs = [f for f in _files(second) if f.endswith(".png")]
    assert len(pngs) == 2 * (40 + 10)
    match, mismatch, errors = filecmp.cmpfiles(first, second, pngs, shallow=False)
    assert len(match) == len(pngs) and not mismatch and not errors

    other = str(tmp_path / "seed1")
    synthetic.generate_synth_streets(other, seed=1, splits={"train": 4})
    for stem in ("0000.png", "0001.png", "0002.png", "0003.png"):
        for kind in ("images", "labels"):
            a = os.path.join(first, kind, "train", stem)
            assert not filecmp.cmp(a, os.path.join(other, kind, "train", stem), shallow=False)


def test_class_coverage_ignore_and_balance(cache_root):
    for split in ("train", "val"):
        labels = _labels(DatasetCatalog.get(f"synth_streets_{split}"))
        counts = np.bincount(labels.ravel(), minlength=256)
        values = set(np.flatnonzero(counts).tolist())
        assert values == set(range(len(CLASSES))) | {255}, values
        share = counts / counts.sum()
        assert 0.002 < share[255] < 0.05  # some ignore pixels, not a large part
        assert share[: len(CLASSES)].max() < 0.5  # no class dominates
        # Every class appears in a good part of the images, small and thin ones included.
        images_with = (labels.reshape(len(labels), -1)[:, :, None] == np.arange(8)).any(1).mean(0)
        assert images_with.min() > 0.5, dict(zip(CLASSES, images_with))
        # Poles are thin: most pole pixels have a non-pole neighbour left or right.
        pole = labels == CLASSES.index("pole")
        edge = pole & ~(np.roll(pole, 1, axis=2) & np.roll(pole, -1, axis=2))
        assert edge.sum() > 0.5 * pole.sum()
    train_labels = _labels(DatasetCatalog.get("synth_streets_train")[:60])
    val_labels = _labels(DatasetCatalog.get("synth_streets_val"))
    assert not any(np.array_equal(a, b) for a in train_labels[:10] for b in val_labels)


def test_crash_leaves_no_cache_and_next_call_generates(tmp_path, monkeypatch):
    monkeypatch.setattr(synthetic, "SPLITS", {"train": 3, "val": 2})
    real_generate = synthetic.generate_synth_streets

    def crash(out_dir, seed=0, splits=None):
        real_generate(out_dir, seed=seed, splits={"train": 2})  # half-written, then dies
        raise KeyboardInterrupt

    monkeypatch.setattr(synthetic, "generate_synth_streets", crash)
    with pytest.raises(KeyboardInterrupt):
        synthetic.ensure_synth_streets(str(tmp_path))
    assert os.listdir(tmp_path) == []  # neither a half dataset nor a leftover temp folder

    monkeypatch.setattr(synthetic, "generate_synth_streets", real_generate)
    synthetic.ensure_synth_streets(str(tmp_path))
    assert os.listdir(tmp_path) == ["synth_streets_v1"]
    assert len(synthetic.load_synth_streets("val", str(tmp_path))) == 2


def test_lost_race_keeps_the_winner(tmp_path, monkeypatch):
    """Another process renames its complete copy into place while this one generates."""
    monkeypatch.setattr(synthetic, "SPLITS", {"train": 2, "val": 1})
    real_generate = synthetic.generate_synth_streets
    winner = synthetic.synth_streets_root(str(tmp_path))

    def generate_while_other_finishes(out_dir, seed=0, splits=None):
        real_generate(winner, seed=seed)
        with open(os.path.join(winner, "winner"), "w"):
            pass
        real_generate(out_dir, seed=seed)

    monkeypatch.setattr(synthetic, "generate_synth_streets", generate_while_other_finishes)
    assert synthetic.ensure_synth_streets(str(tmp_path)) == winner
    assert sorted(os.listdir(tmp_path)) == ["synth_streets_v1"]
    assert os.path.exists(os.path.join(winner, "winner"))


def test_bad_cache_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(synthetic, "SPLITS", {"train": 2, "val": 1})
    root = synthetic.synth_streets_root(str(tmp_path))
    os.makedirs(root)  # e.g. created by hand: no manifest
    with pytest.raises(RuntimeError, match="incomplete.*manifest.json"):
        synthetic.load_synth_streets("train", str(tmp_path))
    synthetic.generate_synth_streets(root, splits={"train": 2, "val": 1})
    os.remove(os.path.join(root, "labels", "train", "0001.png"))
    with pytest.raises(FileNotFoundError, match="labels/train/0001.png is missing"):
        synthetic.load_synth_streets("train", str(tmp_path))
    monkeypatch.setattr(synthetic, "SPLITS", {"train": 5, "val": 1})
    with pytest.raises(RuntimeError, match="other settings"):
        synthetic.load_synth_streets("train", str(tmp_path))
    with pytest.raises(ValueError, match="unknown split 'test'"):
        synthetic.load_synth_streets("test", str(tmp_path))


@pytest.mark.slow
def test_concurrent_processes_share_one_cache(tmp_path):
    code = "from contextrast.data import synthetic; print(synthetic.ensure_synth_streets())"
    env = dict(os.environ, CONTEXTRAST_CACHE=str(tmp_path))
    procs = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE)
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=300)[0].decode().strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    root = synthetic.synth_streets_root(str(tmp_path))
    assert outputs == [root] * 3 and os.listdir(tmp_path) == ["synth_streets_v1"]
    assert len(synthetic.load_synth_streets("train", str(tmp_path))) == 240
