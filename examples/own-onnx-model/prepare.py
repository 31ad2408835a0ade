"""Make the ONNX file this example brings: a float MLP on the digits, exported with torch.onnx, standing in for a
model from another framework or team.

Run: python examples/own-onnx-model/prepare.py; then edgewise run examples/own-onnx-model/recipe.yaml
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from edgewise.zoo.data import DigitsData, load_data
from edgewise.zoo.training import TrainConfig, fit

HERE = Path(__file__).resolve().parent  # the recipe beside this script reads the files from here


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="where to write (default: beside the recipe)")
    args = parser.parse_args()
    data = load_data(DigitsData())
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(),
                          nn.Linear(64, 10))
    fit(model, data, TrainConfig(epochs=60, lr=3e-3), seed=0, label="train the MLP")
    model.eval()
    path = args.out / "my_mlp.onnx"
    torch.onnx.export(model, (data.val.x[:2],), str(path), input_names=["x"], output_names=["logits"],
                      dynamic_shapes={"input": {0: torch.export.Dim("batch")}}, opset_version=21,
                      external_data=False)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
