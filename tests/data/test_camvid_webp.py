"""scripts/camvid_webp.py: pack CamVid as WebP for a GPU host and unpack it to the PNG tree."""

import filecmp
import subprocess
import sys

import numpy as np
from helpers import ROOT
from PIL import Image

SCRIPT = f"{ROOT}/scripts/camvid_webp.py"


def _tree(root):
    rng = np.random.RandomState(0)
    for split in ("train", "val"):
        (root / split).mkdir(parents=True)
        (root / f"{split}annot").mkdir()
        # Smooth images, like photos (noise would not survive a lossy codec).
        ramp = np.linspace(0, 255, 96)[None, :, None] * np.ones((64, 1, 3))
        image = (ramp + rng.randint(0, 8, (64, 96, 3))).clip(0, 255).astype(np.uint8)
        Image.fromarray(image).save(root / split / "a.png")
        Image.fromarray(rng.randint(0, 12, (64, 96)).astype(np.uint8)).save(
            root / f"{split}annot" / "a.png"
        )
        (root / f"{split}.txt").write_text(f"{split}/a.png {split}annot/a.png\n")


def test_pack_then_unpack_restores_the_tree(tmp_path):
    src, packed, out = tmp_path / "camvid", tmp_path / "packed", tmp_path / "data" / "camvid"
    _tree(src)
    for action, a, b in (("pack", src, packed), ("unpack", packed, out)):
        subprocess.run([sys.executable, SCRIPT, action, str(a), str(b)], check=True)
    assert (packed / "train" / "a.webp").is_file() and not (packed / "train" / "a.png").exists()
    for split in ("train", "val"):
        # Labels and lists unchanged, byte for byte; images back as PNG, close to the originals.
        assert filecmp.cmp(src / f"{split}annot" / "a.png", out / f"{split}annot" / "a.png", False)
        assert filecmp.cmp(src / f"{split}.txt", out / f"{split}.txt", shallow=False)
        before = np.asarray(Image.open(src / split / "a.png"), dtype=np.float64)
        after = np.asarray(Image.open(out / split / "a.png"), dtype=np.float64)
        assert after.shape == before.shape
        assert np.abs(after - before).mean() < 0.02 * 255


def test_missing_source_is_named(tmp_path):
    proc = subprocess.run(
        [sys.executable, SCRIPT, "pack", str(tmp_path / "nowhere"), str(tmp_path / "x")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "nowhere: no such folder" in proc.stderr
