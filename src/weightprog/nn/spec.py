"""Model specs: a network with the data it is scored, chosen on and calibrated on.

A spec comes from `build()` as `(model, evaluate)` (the older form) or as a mapping::

    {"model": net, "evaluate": test_fn, "validate": valid_fn, "calibrate": calib_fn,
     "higher_is_better": True, "aggregate": None, "metric": "accuracy", "loss": losses_fn}

`evaluate(model)` is the test metric and `validate(model)` the same metric on held-out data: every
choice the tool makes (a strategy, a range) is made on `validate`, never on `evaluate`.
`calibrate(model)` runs representative non-test inputs through the model; the periphery's ranges
come from it (or from `validate` when it is missing). `evaluate`/`validate` return a number or a
1-D tensor of per-example values; `aggregate` turns those into the metric (default: the mean;
e.g. perplexity is `lambda v: math.exp(v.mean())` over per-token losses), so intervals can cover
the examples as well as the realisations. `loss(model)` yields scalar training losses of mini-batches
of calibrate or validate data (never test data), computed with gradients: `--weighting fisher`
weights each weight's error by its mean squared gradient (nn/fisher.py).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import WeightprogError

SPLITS = ("test", "validate")
"""What a metric is measured on: `test` (the spec's `evaluate`) or `validate` (held out)."""
KEYS = ("model", "evaluate", "validate", "calibrate", "higher_is_better", "aggregate", "metric", "loss")


@dataclass(frozen=True)
class Measurement:
    """One run of a metric function: the metric, and the per-example values when it gave them."""

    value: float
    examples: torch.Tensor | None = None
    """(N,) per-example values (float64), or None for a function that returns one number."""


@dataclass(frozen=True)
class ModelSpec:
    """A network and its metric functions (see the module's docstring).

    Parameters
    ----------
    model
        The torch model.
    evaluate
        Test metric: `evaluate(model) -> float | 1-D tensor`.
    validate
        The same metric on held-out data, or None.
    calibrate
        Runs representative non-test inputs through the model (its return value is ignored), or None.
    higher_is_better
        Direction of the metric.
    aggregate
        Per-example values (1-D tensor) -> the metric; None: the mean.
    metric
        The metric's name (None: `accuracy` when higher is better, else `metric`).
    loss
        `loss(model)` -> an iterable of scalar mini-batch losses on non-test data (for
        `--weighting fisher`), or None.
    """

    model: nn.Module
    evaluate: Callable[[nn.Module], Any]
    validate: Callable[[nn.Module], Any] | None = None
    calibrate: Callable[[nn.Module], Any] | None = None
    higher_is_better: bool = True
    aggregate: Callable[[torch.Tensor], Any] | None = None
    metric: str | None = None
    loss: Callable[[nn.Module], Iterable[torch.Tensor]] | None = None

    def __post_init__(self):
        if not isinstance(self.model, nn.Module):
            raise WeightprogError(f"model spec: 'model' must be a torch.nn.Module, got {type(self.model).__name__}")
        for key in ("evaluate", "validate", "calibrate", "aggregate", "loss"):
            fn = getattr(self, key)
            if key == "evaluate" and fn is None:
                raise WeightprogError("model spec: 'evaluate' (the test metric) is missing")
            if fn is not None and not callable(fn):
                raise WeightprogError(f"model spec: {key!r} must be a function, got {type(fn).__name__}")
        if not isinstance(self.higher_is_better, bool):
            raise WeightprogError(f"model spec: 'higher_is_better' must be true or false, "
                                  f"got {self.higher_is_better!r}")
        if self.metric is not None and not isinstance(self.metric, str):
            raise WeightprogError(f"model spec: 'metric' must be a name, got {self.metric!r}")

    @classmethod
    def of(cls, made: Any, where: str = "model spec") -> ModelSpec:
        """A spec from what `build()` returned: a ModelSpec, `(model, evaluate)` or a mapping.

        Raises
        ------
        WeightprogError
            For anything else, an unknown key (with the nearest valid one) or a wrong type.
        """
        if isinstance(made, ModelSpec):
            return made
        if isinstance(made, tuple) and len(made) == 2 and callable(made[1]):
            return cls(made[0], made[1])
        if isinstance(made, Mapping):
            unknown = [k for k in made if k not in KEYS]
            if unknown:
                near = difflib.get_close_matches(str(unknown[0]), KEYS, 1)
                hint = f" (did you mean {near[0]!r}?)" if near else f"; valid keys: {', '.join(KEYS)}"
                raise WeightprogError(f"{where}: unknown key {unknown[0]!r}{hint}")
            if "model" not in made or "evaluate" not in made:
                raise WeightprogError(f"{where}: a mapping needs 'model' and 'evaluate'")
            return cls(**{k: made[k] for k in KEYS if k in made})
        raise WeightprogError(f"{where}: must return (model, evaluate_fn) or a mapping with 'model' and "
                              f"'evaluate', got {type(made).__name__}")

    @property
    def metric_name(self) -> str:
        return self.metric or ("accuracy" if self.higher_is_better else "metric")

    @property
    def selection_split(self) -> str:
        """Where choices are made: `validate` when the spec has it (else `test`, and outputs say so)."""
        return "validate" if self.validate is not None else "test"

    def function(self, split: str) -> Callable[[nn.Module], Any]:
        """The metric function of a split (`SPLITS`).

        Raises
        ------
        WeightprogError
            For `validate` on a spec without it, or an unknown split.
        """
        if split == "test":
            return self.evaluate
        if split == "validate":
            if self.validate is None:
                raise WeightprogError("model spec: has no 'validate' (held-out data) to choose on")
            return self.validate
        raise WeightprogError(f"split: use one of {', '.join(SPLITS)}, got {split!r}")

    def calibration_run(self) -> tuple[Callable[[], Any], str]:
        """What the periphery's ranges are calibrated on, and its name: `calibrate`, else
        `validate`, else (older specs) the test data itself."""
        name = next(n for n in ("calibrate", "validate", "evaluate") if getattr(self, n) is not None)
        fn = getattr(self, name)
        return (lambda: fn(self.model)), name

    def measure(self, split: str, where: str, finite: bool = False) -> Measurement:
        """Run a split's metric on the model as it is now.

        Parameters
        ----------
        split
            `test` or `validate`.
        where
            Named in errors (e.g. the strategy and time).
        finite
            Refuse inf as well as NaN (the digital run must be finite; a programmed perplexity may
            overflow).

        Raises
        ------
        WeightprogError
            A function that returns neither a number nor a 1-D tensor, or NaN.
        """
        return self.reduce(self.function(split)(self.model), where, finite)

    def reduce(self, value: Any, where: str, finite: bool = False) -> Measurement:
        """A metric function's return value -> Measurement (per-example values aggregated)."""
        examples = None
        if isinstance(value, torch.Tensor) and value.dim() == 1 and value.numel() > 1:
            examples = value.detach().to("cpu", torch.float64)
            value = self.aggregate(examples) if self.aggregate is not None else examples.mean()
        elif isinstance(value, torch.Tensor) and value.dim() > 1:
            raise WeightprogError(f"evaluate_fn: must return a number or a 1-D tensor of per-example values, "
                                  f"got a tensor of shape {tuple(value.shape)} ({where})")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise WeightprogError(f"evaluate_fn: must return a number, got {type(value).__name__} ({where})") from None
        if math.isnan(number) or (finite and math.isinf(number)):
            raise WeightprogError(f"evaluate_fn: returned {number} ({where}); it must return a finite number")
        return Measurement(number, examples)
