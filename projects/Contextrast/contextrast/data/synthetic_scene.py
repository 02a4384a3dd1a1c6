"""Procedural rendering of one ``synth_streets`` scene (see :mod:`contextrast.data.synthetic`).

A scene is drawn back to front with OpenCV primitives into three layers at once: the label map,
a colour canvas for objects and a mask of which pixels take their colour from that canvas. Stuff
classes (road, sidewalk, building, vegetation, sky) take their colour from per-class textures
computed with vectorised numpy; then shadows, gain, sensor noise and a slight blur are applied,
so boundaries in the image are soft while the labels stay exact.

Difficulty is deliberate: facades and sidewalks draw their colour from one masonry palette and
share a mortar/tile grid pattern (only the context, above or below the street, tells them apart);
poles and overcast skies are grey like facades; tree trunks are brown yet labelled vegetation;
far objects are a few pixels tall.
"""

from typing import Callable, Tuple

import cv2
import numpy as np

CLASSES = ("road", "sidewalk", "building", "pole", "vegetation", "sky", "person", "car")
# Cityscapes colours of the same classes, for visualisation.
COLORS = (
    (128, 64, 128),
    (244, 35, 232),
    (70, 70, 70),
    (153, 153, 153),
    (107, 142, 35),
    (70, 130, 180),
    (220, 20, 60),
    (0, 0, 142),
)
ROAD, SIDEWALK, BUILDING, POLE, VEGETATION, SKY, PERSON, CAR = range(len(CLASSES))
IGNORE_LABEL = 255

# Shared by facades and sidewalks on purpose (RGB).
_MASONRY = np.array(
    [[150, 140, 130], [172, 160, 140], [125, 118, 112], [188, 172, 150], [145, 105, 88]],
    np.float32,
)
_FOLIAGE = np.array([[70, 110, 45], [90, 125, 50], [60, 95, 40], [118, 120, 62]], np.float32)
_CAR_PAINT = np.array(
    [[170, 30, 30], [30, 60, 150], [225, 225, 225], [35, 35, 38], [150, 150, 155], [40, 90, 60]],
    np.float32,
)


class _Layers:
    """The three drawing layers; ``draw(fn, cls, color)`` calls ``fn(img, value)`` on each."""

    def __init__(self, h: int, w: int):
        self.label = np.full((h, w), SKY, np.uint8)
        self.paint = np.zeros((h, w, 3), np.float32)  # RGB colour of painted pixels
        self.painted = np.zeros((h, w), np.uint8)  # 1 where ``paint`` gives the colour

    def draw(self, fn: Callable[[np.ndarray, object], None], cls: int, color=None) -> None:
        fn(self.label, int(cls))
        if color is None:  # stuff: coloured by the class texture later
            fn(self.painted, 0)
        else:
            fn(self.paint, tuple(float(c) for c in color))
            fn(self.painted, 1)


def _gauss(rng: np.random.Generator, std: float, shape) -> np.ndarray:
    """float32 Gaussian noise (float64 would double the cost of every texture operation)."""
    return rng.standard_normal(shape, dtype=np.float32) * np.float32(std)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """(h, w) float32 noise in about [-1, 1] with a correlation length of ``cell`` pixels."""
    grid = rng.uniform(-1, 1, (h // cell + 2, w // cell + 2)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def _textures(rng, h, w, horizon, road_line, present):
    """Per-class RGB textures, (h, w, 3) float32, computed only for the ``present`` classes."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yi, xi = yy.astype(np.int32), xx.astype(np.int32)
    tex = {}
    if SKY in present:
        if rng.random() < 0.4:  # overcast: grey, close to facades
            top, bottom = np.float32([175, 180, 190]), np.float32([215, 215, 220])
        else:
            top, bottom = np.float32([70, 120, 200]), np.float32([170, 200, 235])
        t = np.clip(yy / max(horizon, 1), 0, 1)[..., None]
        clouds = _smooth_noise(rng, h, w, 24)[..., None] * 18
        tex[SKY] = top * (1 - t) + bottom * t + clouds
    if BUILDING in present:
        base = _MASONRY[rng.integers(len(_MASONRY))] + _gauss(rng, 8, 3)
        bh, bw = int(rng.integers(3, 6)), int(rng.integers(6, 11))
        row = yi // bh
        mortar = (yi % bh == 0) | ((xi + (row % 2) * (bw // 2)) % bw == 0)
        b = base * (1 + 0.08 * _smooth_noise(rng, h, w, 16))[..., None]
        b[mortar] *= 0.85
        if rng.random() < 0.8:  # window grid; blank facades are the hard case
            px, py = int(rng.integers(10, 19)), int(rng.integers(12, 21))
            win = ((xi + int(rng.integers(px))) % px < px * 0.55) & (yi % py < py * 0.55)
            glass = np.float32([45, 55, 75]) + np.float32(rng.uniform(0, 60) * (rng.random() < 0.3))
            b[win] = glass + _gauss(rng, 4, (int(win.sum()), 3))
        tex[BUILDING] = b
    if SIDEWALK in present:
        base = _MASONRY[rng.integers(len(_MASONRY))] + _gauss(rng, 8, 3)
        t = int(rng.integers(6, 13))
        s = base * (1 + 0.06 * _smooth_noise(rng, h, w, 12))[..., None]
        s[(xi % t == 0) | (yi % t == 0)] *= 0.85
        tex[SIDEWALK] = s
    if ROAD in present:
        grey = rng.uniform(60, 115)
        r = np.float32(grey) + _gauss(rng, 3, 3) + _gauss(rng, 6, (h, w, 1))
        r = r + 10 * _smooth_noise(rng, h, w, 20)[..., None]
        if road_line is not None and rng.random() < 0.7:  # dashed centre marking
            x_top, x_bottom = road_line
            depth = np.clip((yy - horizon) / max(h - horizon, 1), 0, 1)
            centre = x_top + (x_bottom - x_top) * depth
            dash = (np.log1p(np.maximum(yy - horizon, 0)) * 5) % 1 < 0.5
            r[(np.abs(xx - centre) < 0.4 + 2.5 * depth) & dash & (yy > horizon + 2)] = 215
        tex[ROAD] = r
    if VEGETATION in present:
        base = _FOLIAGE[rng.integers(len(_FOLIAGE))] + _gauss(rng, 8, 3)
        leaf = 30 * _smooth_noise(rng, h, w, 4)[..., None] + _gauss(rng, 20, (h, w, 1))
        tex[VEGETATION] = base + leaf
    return tex


def _things(rng, layers, h, w, horizon, edges):
    """Poles, trees, persons and cars, sorted by their ground row so near ones occlude far ones."""
    left_x, right_x, walk_l, walk_r, vx = edges

    def x_at(x_bottom, y):  # x of a line from the vanishing point to (x_bottom, h) at row y
        return vx + (x_bottom - vx) * (y - horizon) / (h - horizon)

    items = []
    for _ in range(int(rng.integers(1, 5))):
        items.append(("pole", rng.uniform(horizon + 4, h + 10), rng.random()))
    for _ in range(int(rng.integers(0, 3))):
        items.append(("tree", rng.uniform(horizon + 4, h), rng.random()))
    for _ in range(int(rng.integers(0, 5))):
        items.append(("person", rng.uniform(horizon + 3, h + 5), rng.random()))
    for _ in range(int(rng.integers(0, 5))):
        items.append(("car", rng.uniform(horizon + 5, h + 15), rng.random()))
    for kind, y, u in sorted(items, key=lambda item: item[1]):
        s = (y - horizon) / (h - horizon)  # perspective scale: 0 at the horizon, 1 at the bottom
        yb = int(round(y))
        side = u < 0.5
        on_walk = (
            x_at(walk_l, y) + (x_at(left_x, y) - x_at(walk_l, y)) * (2 * u)
            if side
            else x_at(right_x, y) + (x_at(walk_r, y) - x_at(right_x, y)) * (2 * u - 1)
        )
        if kind == "pole":
            x, top = int(on_walk), int(yb - s * rng.uniform(0.6, 1.1) * h - 8)
            thick = max(1, int(round(s * rng.uniform(2, 5))))
            grey = rng.uniform(90, 165)
            layers.draw(lambda im, v: cv2.line(im, (x, yb), (x, top), v, thick), POLE, (grey,) * 3)
            if rng.random() < 0.5:  # lamp arm towards the street
                arm = int(s * rng.uniform(8, 25)) * (1 if side else -1)
                layers.draw(
                    lambda im, v: cv2.line(im, (x, top), (x + arm, top), v, thick),
                    POLE,
                    (grey,) * 3,
                )
        elif kind == "tree":
            x, trunk_h = int(on_walk), int(s * rng.uniform(0.2, 0.35) * h + 4)
            brown = (95 + rng.uniform(-15, 15), 70, 45)
            thick = max(1, int(round(s * 4)))
            layers.draw(
                lambda im, v: cv2.line(im, (x, yb), (x, yb - trunk_h), v, thick), VEGETATION, brown
            )
            radius = s * rng.uniform(10, 28) + 3
            for _ in range(int(rng.integers(3, 6))):
                c = (int(x + rng.normal(0, radius * 0.5)), int(yb - trunk_h - rng.normal(0, 1) * 4))
                r = int(radius * rng.uniform(0.5, 1.0))
                layers.draw(lambda im, v: cv2.circle(im, c, r, v, -1), VEGETATION)
        elif kind == "person":
            ph = s * rng.uniform(0.3, 0.5) * h
            if ph < 6:
                continue
            x, bw = int(on_walk), max(2, int(ph * 0.28))
            hip, neck = int(yb - ph * 0.45), int(yb - ph * 0.82)
            legs = tuple(rng.uniform(20, 90, 3))
            shirt = tuple(rng.uniform(20, 230, 3))
            lw = max(1, bw // 3)
            for dx in (-bw // 3, bw // 3):
                layers.draw(lambda im, v: cv2.line(im, (x, hip), (x + dx, yb), v, lw), PERSON, legs)
            layers.draw(
                lambda im, v: cv2.rectangle(im, (x - bw // 2, neck), (x + bw // 2, hip), v, -1),
                PERSON,
                shirt,
            )
            skin = (200 - rng.uniform(0, 110)) * np.array([1.0, 0.8, 0.65])
            hr = max(1, int(ph * 0.08))
            layers.draw(lambda im, v: cv2.circle(im, (x, neck - hr), hr, v, -1), PERSON, skin)
        else:  # car, somewhere across the road
            cw = s * rng.uniform(0.35, 0.55) * w
            if cw < 8:
                continue
            ch = cw * rng.uniform(0.45, 0.6)
            xc = x_at(left_x, y) + (x_at(right_x, y) - x_at(left_x, y)) * rng.uniform(0.1, 0.9)
            x0, x1 = int(xc - cw / 2), int(xc + cw / 2)
            body = _CAR_PAINT[rng.integers(len(_CAR_PAINT))] + rng.normal(0, 10, 3)
            top, waist = yb - ch, yb - ch * 0.55
            cabin = np.array(
                [
                    [x0 + cw * 0.1, waist],
                    [x0 + cw * 0.25, top],
                    [x1 - cw * 0.25, top],
                    [x1 - cw * 0.1, waist],
                ]
            ).astype(np.int32)
            glass = (40, 50, 65)
            layers.draw(lambda im, v: cv2.fillPoly(im, [cabin], v), CAR, glass)
            body_top = int(yb - ch * 0.6)
            layers.draw(
                lambda im, v: cv2.rectangle(im, (x0, body_top), (x1, int(yb - ch * 0.12)), v, -1),
                CAR,
                body,
            )
            wr = max(1, int(ch * 0.2))
            for wx in (int(x0 + cw * 0.2), int(x1 - cw * 0.2)):
                layers.draw(lambda im, v: cv2.circle(im, (wx, yb - wr), wr, v, -1), CAR, (20,) * 3)


def render_scene(rng: np.random.Generator, h: int, w: int) -> Tuple[np.ndarray, np.ndarray]:
    """Render one street scene.

    Args:
        rng: the only source of randomness (so the output is a function of its seed).
        h, w: image size.

    Returns:
        image: (h, w, 3) uint8 RGB.
        label: (h, w) uint8 train ids in ``[0, len(CLASSES))`` or :data:`IGNORE_LABEL`.
    """
    layers = _Layers(h, w)
    horizon = int(rng.uniform(0.3, 0.5) * h)
    vx = rng.uniform(0.3, 0.7) * w
    # Each side of the street, below the horizon, is facades (down to the ground) or a park.
    sides = rng.choice([BUILDING, VEGETATION], size=2, p=[0.7, 0.3])
    layers.label[horizon:, : int(vx)] = sides[0]
    layers.label[horizon:, int(vx) :] = sides[1]
    x = int(rng.integers(-30, 0))
    while x < w:  # skyline of blocks with occasional gaps
        bw = int(rng.integers(18, 70))
        if rng.random() > 0.15:
            layers.label[int(horizon * rng.uniform(0.05, 0.9)) : horizon, max(x, 0) : x + bw] = (
                BUILDING
            )
        x += bw
    left_x, right_x = rng.uniform(-0.4, 0.25) * w, rng.uniform(0.75, 1.4) * w
    walk_l = left_x - rng.uniform(0.15, 0.6) * w * (rng.random() > 0.2)
    walk_r = right_x + rng.uniform(0.15, 0.6) * w * (rng.random() > 0.2)
    walk = np.array([[vx - 5, horizon], [vx + 5, horizon], [walk_r, h], [walk_l, h]], np.int32)
    road = np.array([[vx - 1, horizon], [vx + 1, horizon], [right_x, h], [left_x, h]], np.int32)
    layers.draw(lambda im, v: cv2.fillPoly(im, [walk], v), SIDEWALK)
    layers.draw(lambda im, v: cv2.fillPoly(im, [road], v), ROAD)
    _things(rng, layers, h, w, horizon, (left_x, right_x, walk_l, walk_r, vx))

    # Ignore: small unlabelled clutter blobs and, sometimes, an ego-vehicle band at the bottom.
    for _ in range(int(rng.integers(0, 3))):
        c = (int(rng.integers(w)), int(rng.integers(horizon, h)))
        axes = (int(rng.integers(2, 9)), int(rng.integers(2, 7)))
        angle = float(rng.uniform(0, 180))
        layers.draw(
            lambda im, v: cv2.ellipse(im, c, axes, angle, 0, 360, v, -1),
            IGNORE_LABEL,
            rng.uniform(30, 250, 3),
        )
    if rng.random() < 0.35:
        depth = int(rng.integers(4, 11))
        centre, axes = (w // 2, h + depth), (int(w * 0.8), 2 * depth)
        layers.draw(
            lambda im, v: cv2.ellipse(im, centre, axes, 0, 180, 360, v, -1),
            IGNORE_LABEL,
            (32, 32, 36),
        )

    label = layers.label
    present = set(np.flatnonzero(np.bincount(label.ravel(), minlength=256)).tolist())
    textures = _textures(rng, h, w, horizon, (vx, (left_x + right_x) / 2), present)
    image = layers.paint.copy()
    for cls, tex in textures.items():
        stuff = (label == cls) & (layers.painted == 0)
        image[stuff] = tex[stuff]

    # Photometric variation: a cast shadow below the horizon, gain, noise, slight blur.
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if rng.random() < 0.5:
        a, b = rng.normal(size=2)
        shadow = (a * (xx - rng.uniform(0, w)) + b * (yy - rng.uniform(horizon, h)) > 0) & (
            yy > horizon
        )
        image[shadow] *= np.float32(rng.uniform(0.55, 0.8))
    image *= np.float32(rng.uniform(0.75, 1.15))
    image += _gauss(rng, 3, image.shape)
    image = cv2.GaussianBlur(image, (3, 3), 0.7)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8), label
