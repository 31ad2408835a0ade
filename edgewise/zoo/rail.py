"""Procedural rail scenes for segmentation: an ego view from a train, with the seeds' 7 classes.

Each scene is drawn from its own random stream, `(seed, index)`, so scene k is the same whatever
the data set size, and the train, val and test splits never share a scene. Geometry follows a
pin-hole view down the track: image rows below the horizon map to a depth parameter t (0 at the
horizon, 1 at the bottom edge); the track centre, the gauge and every object on the track scale
with t, so rails converge to the vanishing point and may curve on the way.
"""

from __future__ import annotations

import numpy as np

from edgewise.board.errors import UserError
from edgewise.zoo.dataset import Dataset, make_split

RAIL_CLASSES = ("rail", "trackbed", "vegetation", "anomaly", "ground", "buildings", "sky")
RAIL, TRACKBED, VEGETATION, ANOMALY, GROUND, BUILDINGS, SKY = range(7)
MIN_SIZE, MAX_SIZE = 32, 512
# index offsets keep the three splits' random streams apart
_SPLIT_OFFSETS = {"train": 0, "val": 1_000_000, "test": 2_000_000}


def _jitter(rng: np.random.Generator, rgb: tuple[float, float, float], amount: float) -> np.ndarray:
    return np.clip(np.asarray(rgb) + rng.uniform(-amount, amount, 3), 0.0, 1.0)


def render_scene(height: int, width: int, seed: int, index: int,
                 anomaly_prob: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Draw scene `index` of stream `seed`: an image (3, H, W) in [0, 1] and labels (H, W) uint8."""
    rng = np.random.default_rng([seed, index])
    v, u = np.meshgrid((np.arange(height) + 0.5) / height, (np.arange(width) + 0.5) / width, indexing="ij")
    label = np.full((height, width), SKY, dtype=np.uint8)
    image = np.zeros((3, height, width), dtype=np.float32)

    horizon = rng.uniform(0.3, 0.45)
    below = v > horizon
    t = np.clip((v - horizon) / (1.0 - horizon), 0.0, 1.0)
    vanish_x = 0.5 + rng.uniform(-0.15, 0.15)
    bottom_x = 0.5 + rng.uniform(-0.08, 0.08)
    curve = rng.uniform(-0.3, 0.3)
    centre = vanish_x + (bottom_x - vanish_x) * t + curve * t * (1.0 - t)
    bed_half = rng.uniform(0.26, 0.36) * t
    gauge_half = bed_half * rng.uniform(0.45, 0.6)

    # far field first, near field last: later classes occlude earlier ones
    label[below] = GROUND
    lateral = np.abs(u - centre) / np.maximum(t, 1e-3)
    edge = rng.uniform(0.7, 1.2) + 0.15 * np.sin(u * rng.uniform(10, 30) + rng.uniform(0, 6.3))
    sides = rng.choice([(1, 1), (1, 0), (0, 1)])
    right = u > centre
    veg_side = np.where(right, sides[1], sides[0]).astype(bool)
    label[below & veg_side & (lateral > edge)] = VEGETATION

    def draw_buildings() -> None:
        for _ in range(rng.integers(0, 4)):
            x0 = rng.uniform(0.0, 0.9)
            x1 = x0 + rng.uniform(0.06, 0.25)
            top = horizon - rng.uniform(0.08, 0.25)
            label[(u >= x0) & (u <= x1) & (v >= top) & (v <= horizon + 0.01)] = BUILDINGS

    def draw_trees() -> None:
        for _ in range(rng.integers(1, 6)):
            cx, r = rng.uniform(0.0, 1.0), rng.uniform(0.04, 0.12)
            cy = horizon - r * rng.uniform(0.2, 1.0)
            label[((u - cx) ** 2 + ((v - cy) * 1.3) ** 2 < r * r) & (v <= horizon + 0.01)] = VEGETATION

    for draw in rng.permutation([draw_buildings, draw_trees]):
        draw()

    on_bed = below & (np.abs(u - centre) < bed_half)
    label[on_bed] = TRACKBED
    rail_half = np.maximum(0.5 / width, rng.uniform(0.008, 0.014) * t)
    for side in (-1.0, 1.0):
        label[below & (t > 0.02) & (np.abs(u - (centre + side * gauge_half)) < rail_half)] = RAIL

    if rng.random() < anomaly_prob:
        ta = rng.uniform(0.35, 0.9)
        base_v = horizon + ta * (1.0 - horizon)
        ax = vanish_x + (bottom_x - vanish_x) * ta + curve * ta * (1 - ta) + rng.uniform(-0.5, 0.5) * 0.3 * ta
        half_w = rng.uniform(0.04, 0.1) * ta
        tall = rng.uniform(0.06, 0.2) * ta
        if rng.random() < 0.5:
            shape = (np.abs(u - ax) < half_w) & (v <= base_v) & (v >= base_v - tall)
        else:
            shape = ((u - ax) / half_w) ** 2 + ((v - (base_v - tall / 2)) / (tall / 2)) ** 2 < 1.0
        label[shape] = ANOMALY

    _paint(image, label, rng, u, v, t, horizon)
    return image, label


def _paint(image: np.ndarray, label: np.ndarray, rng: np.random.Generator, u: np.ndarray, v: np.ndarray,
           t: np.ndarray, horizon: float) -> None:
    """Colour each class with per-scene jitter and per-pixel texture, in place."""
    overcast = rng.random() < 0.3
    sky_top = _jitter(rng, (0.72, 0.74, 0.76) if overcast else (0.35, 0.55, 0.88), 0.06)
    colours = {
        RAIL: _jitter(rng, (0.78, 0.78, 0.8), 0.05),
        TRACKBED: _jitter(rng, (0.45, 0.41, 0.38), 0.05),
        VEGETATION: _jitter(rng, (0.2, 0.45, 0.16), 0.07),
        ANOMALY: rng.choice(np.array([(0.9, 0.15, 0.1), (0.95, 0.6, 0.1), (0.15, 0.3, 0.85), (0.9, 0.9, 0.2)])),
        GROUND: _jitter(rng, rng.choice(np.array([(0.52, 0.43, 0.3), (0.55, 0.55, 0.32)])), 0.05),
        BUILDINGS: _jitter(rng, rng.choice(np.array([(0.55, 0.55, 0.57), (0.62, 0.3, 0.22), (0.8, 0.74, 0.6)])),
                           0.05),
    }
    texture = {RAIL: 0.03, TRACKBED: 0.09, VEGETATION: 0.08, ANOMALY: 0.03, GROUND: 0.05, BUILDINGS: 0.03}
    h, w = label.shape
    noise = rng.standard_normal((h, w)).astype(np.float32)
    for cls, rgb in colours.items():
        mask = label == cls
        image[:, mask] = (rgb[:, None] + texture[cls] * noise[mask][None]).astype(np.float32)
    # sleepers: dark bands across the bed at equal spacing in depth (1/t), so they crowd far away
    sleepers = (label == TRACKBED) & (np.mod(4.0 / np.maximum(t, 1e-3), 1.0) < 0.35)
    image[:, sleepers] *= 0.55
    windows = (label == BUILDINGS) & (np.mod(u * 40, 1.0) < 0.4) & (np.mod(v * 50, 1.0) < 0.4)
    image[:, windows] *= 0.6
    sky = label == SKY
    lift = np.clip((v[sky] / max(horizon, 1e-3)), 0.0, 1.0)
    image[:, sky] = sky_top[:, None] + 0.2 * lift[None] * (1.0 - sky_top[:, None])
    image *= rng.uniform(0.75, 1.15)
    image += 0.02 * rng.standard_normal(image.shape).astype(np.float32)
    np.clip(image, 0.0, 1.0, out=image)


def _check_size(size: int | tuple[int, int]) -> tuple[int, int]:
    height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if not (MIN_SIZE <= height <= MAX_SIZE and MIN_SIZE <= width <= MAX_SIZE):
        raise UserError(f"rail scene size {height}x{width} is outside {MIN_SIZE}..{MAX_SIZE}",
                        f"choose a size between {MIN_SIZE} and {MAX_SIZE} pixels per side")
    return height, width


def render_scenes(size: int | tuple[int, int], count: int, seed: int = 0, start: int = 0,
                  anomaly_prob: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Draw scenes `start .. start+count-1`: images (N, 3, H, W) float32 and labels (N, H, W) int64."""
    height, width = _check_size(size)
    images = np.empty((count, 3, height, width), dtype=np.float32)
    labels = np.empty((count, height, width), dtype=np.int64)
    for i in range(count):
        images[i], labels[i] = render_scene(height, width, seed, start + i, anomaly_prob)
    return images, labels


def rail_dataset(size: int | tuple[int, int] = 64, train: int = 512, val: int = 128, test: int = 128,
                 seed: int = 0, anomaly_prob: float = 0.5) -> Dataset:
    """Generate a rail-scene segmentation data set; the test scenes are never seen in training."""
    splits = {
        name: make_split(*render_scenes(size, count, seed, _SPLIT_OFFSETS[name], anomaly_prob))
        for name, count in (("train", train), ("val", val), ("test", test))
    }
    return Dataset(name="rail", task="segmentation", class_names=RAIL_CLASSES, **splits)
