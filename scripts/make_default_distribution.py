"""Rebuild src/weightprog/data/default_weights.npy: the built-in weight distribution.

A 64-512-256-10 MLP trained on scikit-learn's 8×8 digits (1,797 images, a seeded 80/20 split),
its three weight matrices normalised per output column (as deployed) and stored as float16.
Needs scikit-learn (not a runtime dependency):  pip install scikit-learn
    python scripts/make_default_distribution.py
"""

import json
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits

from weightprog.sample import analog_tensors, normalise_matrix

OUT = Path(__file__).resolve().parents[1] / "src" / "weightprog" / "data"


def main() -> None:
    torch.manual_seed(0)
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32)
    y = torch.tensor(y)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    train, test = order[: int(0.8 * len(x))], order[int(0.8 * len(x)):]
    model = torch.nn.Sequential(torch.nn.Linear(64, 512), torch.nn.ReLU(), torch.nn.Linear(512, 256),
                                torch.nn.ReLU(), torch.nn.Linear(256, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    for _ in range(60):
        for batch in torch.split(train[torch.randperm(len(train))], 64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            opt.step()
    with torch.no_grad():
        accuracy = (model(x[test]).argmax(1) == y[test]).float().mean().item()
    values = torch.cat([normalise_matrix(w.detach(), "column")
                        for _, w in analog_tensors(dict(model.named_parameters()))])
    np.save(OUT / "default_weights.npy", values.numpy().astype(np.float16))
    info = {"model": "MLP 64-512-256-10 on sklearn digits", "test_accuracy": round(accuracy, 4),
            "weights": int(values.numel()), "normalised": "per output column"}
    (OUT / "default_weights.json").write_text(json.dumps(info, indent=1) + "\n")
    print(info)


if __name__ == "__main__":
    main()
