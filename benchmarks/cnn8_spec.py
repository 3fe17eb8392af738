"""A model spec for timing only: an 8-layer CNN (7 convolutions of 32–256 channels and a linear
head) with random weights, scored on 512 random 32×32 images and calibrated on 128 others. Its
accuracy means nothing; its wide layers (up to 1,152 crossbar rows, three input tiles) are what
issue 23's end-to-end check needs:

    weightprog evaluate --model benchmarks/cnn8_spec.py:build --device pcm --periphery chip-8bit \
        --strategy lsp-first --times 1s,1h,1d,30d,1y --repeats 2 --out runs/cnn8

prints (and results.json `timing` records) the analogue passes' cost against one digital pass.
"""
import torch
from torch import nn


def build():
    torch.manual_seed(1)
    layers, c = [], 3
    for i, out in enumerate((32, 32, 64, 64, 128, 128, 256)):
        layers += [nn.Conv2d(c, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU()]
        if i in (1, 3, 5):
            layers.append(nn.MaxPool2d(2))
        c = out
    net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, 10)).eval()
    g = torch.Generator().manual_seed(2)
    test_x, calib_x = torch.randn(512, 3, 32, 32, generator=g), torch.randn(128, 3, 32, 32, generator=g)
    labels = torch.randint(0, 10, (512,), generator=g)

    @torch.no_grad()
    def evaluate(model):
        return torch.cat([(model(x).argmax(-1) == y).float() for x, y in zip(test_x.split(128), labels.split(128))])

    @torch.no_grad()
    def calibrate(model):
        model(calib_x)

    return {"model": net, "evaluate": evaluate, "calibrate": calibrate}
