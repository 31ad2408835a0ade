"""Make the inputs this example brings: a folder of digit images (one sub-folder per class) and a torch CNN trained
on it with a plain training loop, saved whole with torch.save, as your own project would hand them to Edgewise.

Run: python examples/own-torch-model/prepare.py [--epochs N]; then edgewise run examples/own-torch-model/recipe.yaml
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sklearn.datasets import load_digits
from torch import nn

from edgewise.zoo.data import FolderData, load_data

HERE = Path(__file__).resolve().parent  # the recipe beside this script reads the files from here


def write_images(root: Path) -> None:
    """scikit-learn's digits as 16x16 grey PNGs in root/<digit>/<index>.png."""
    digits = load_digits()
    for i, (image, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (image / 16.0 * 255).astype(np.uint8)
        Image.fromarray(pixels).resize((16, 16), Image.BILINEAR).save(folder / f"{i:04d}.png")


def build() -> nn.Module:
    """A small CNN of plain torch layers (no project code needed to load it back)."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--out", type=Path, default=HERE, help="where to write (default: beside the recipe)")
    args = parser.parse_args()
    images = args.out / "digit-images"
    if not images.is_dir():
        write_images(images)
    # the same split Edgewise makes of the folder, so the test split stays unseen
    data = load_data(FolderData(path=images, size=(16, 16), grayscale=True))
    torch.manual_seed(0)
    model = build()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(args.epochs):
        model.train()
        order = torch.randperm(len(data.train.x))
        for start in range(0, len(order), 64):
            batch = order[start:start + 64]
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(data.train.x[batch]), data.train.y[batch]).backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = float((model(data.val.x).argmax(1) == data.val.y).float().mean())
    torch.save(model, args.out / "my_cnn.pt")
    print(f"wrote {images} and {args.out / 'my_cnn.pt'} (validation accuracy {accuracy:.3f})")


if __name__ == "__main__":
    main()
