#!/usr/bin/env python
"""Carry CamVid to a GPU host whose upload limit it exceeds (122 MB of PNG against 64 MiB).

``pack`` re-encodes the RGB images as WebP at quality 95 (about 1/6 of the PNG size) and copies
the label maps and list files unchanged; ``unpack`` writes the PNG tree back, which the CamVid
loader reads as usual. Lossy, so numbers from unpacked images are not numbers of the original
files; every setting trained on the same unpacked tree still sees the same pixels, which is what
a side-by-side comparison needs.

    python scripts/camvid_webp.py pack $DETECTRON2_DATASETS/camvid .gpu/camvid_webp
    python scripts/camvid_webp.py unpack .gpu/camvid_webp /tmp/data/camvid   # on the GPU host
"""

import argparse
import os
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor

from PIL import Image

IMAGE_FOLDERS = ("train", "val", "test")  # RGB images: re-encoded; everything else is copied


def _convert(src: str, dst: str, fmt: str) -> None:
    with Image.open(src) as im:
        im.convert("RGB").save(dst, fmt, **({"quality": 95} if fmt == "WEBP" else {}))


def _mirror(src_root: str, dst_root: str, from_ext: str, to_ext: str, fmt: str) -> int:
    """Convert the image folders, copy the rest; returns the number of converted images."""
    jobs = []
    for dirpath, _, files in os.walk(src_root):
        rel = os.path.relpath(dirpath, src_root)
        os.makedirs(os.path.join(dst_root, rel), exist_ok=True)
        images = rel.split(os.sep)[0] in IMAGE_FOLDERS
        for name in files:
            src, dst = os.path.join(dirpath, name), os.path.join(dst_root, rel, name)
            if images and name.endswith(from_ext):
                jobs.append((src, dst[: -len(from_ext)] + to_ext))
            else:
                shutil.copy2(src, dst)
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        list(pool.map(lambda job: _convert(*job, fmt), jobs))
    return len(jobs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=["pack", "unpack"])
    parser.add_argument("source", help="camvid/ folder (pack) or a packed folder (unpack)")
    parser.add_argument("destination")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.source):
        parser.error(f"{args.source}: no such folder")
    if args.action == "pack":
        n = _mirror(args.source, args.destination, ".png", ".webp", "WEBP")
    else:
        n = _mirror(args.source, args.destination, ".webp", ".png", "PNG")
    print(f"{args.action}: {n} images, {args.source} -> {args.destination}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
