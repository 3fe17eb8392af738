"""weightprog: optimised weight programming for analogue in-memory computing.

Public API; everything else may change.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

_EXPORTS = {
    "BASELINES": ".baselines", "baseline": ".baselines", "Cell": ".cell", "Comparison": ".compare",
    "compare_devices": ".compare", "DeviceModel": ".devices", "device_names": ".devices", "get_device": ".devices",
    "load_tabulated": ".devices", "WeightprogError": ".errors", "ExpectedTNMSE": ".expected", "bound": ".expected",
    "pointwise_strategy": ".expected", "Mapping": ".hardware", "ProgrammedTensor": ".hardware",
    "program_weights": ".hardware", "TNMSE": ".metric", "TNMSEResult": ".metric", "rescore": ".metric",
    "OverTimeResult": ".nn", "evaluate_over_time": ".nn", "SearchBars": ".report.progress", "WeightSample": ".sample",
    "default_sample": ".sample", "load_distribution": ".sample", "sample_from_array": ".sample",
    "sample_from_module": ".sample", "sample_from_tensors": ".sample", "sample_from_values": ".sample",
    "Score": ".scores", "Scoreboard": ".scores", "Scored": ".scores", "LayerResult": ".search.per_layer",
    "OptimizeResult": ".search.run", "OptimizeSettings": ".search.run", "optimize": ".search.run",
    "optimize_per_layer": ".search.per_layer", "Strategy": ".strategy", "StudyResult": ".study",
    "StudySettings": ".study", "run_study": ".study", "DEFAULT_TIMES_S": ".timeunits", "parse_times": ".timeunits",
}
"""Each public name and the module that defines it: loaded on first use (PEP 562), so that importing
`weightprog` or its command line does not load torch, numpy or matplotlib until a name needs them."""

if TYPE_CHECKING:
    from .baselines import BASELINES, baseline
    from .cell import Cell
    from .compare import Comparison, compare_devices
    from .devices import DeviceModel, device_names, get_device, load_tabulated
    from .errors import WeightprogError
    from .expected import ExpectedTNMSE, bound, pointwise_strategy
    from .hardware import Mapping, ProgrammedTensor, program_weights
    from .metric import TNMSE, TNMSEResult, rescore
    from .nn import OverTimeResult, evaluate_over_time
    from .report.progress import SearchBars
    from .sample import (
                         WeightSample,
                         default_sample,
                         load_distribution,
                         sample_from_array,
                         sample_from_module,
                         sample_from_tensors,
                         sample_from_values,
    )
    from .scores import Score, Scoreboard, Scored
    from .search.per_layer import LayerResult, optimize_per_layer
    from .search.run import OptimizeResult, OptimizeSettings, optimize
    from .strategy import Strategy
    from .study import StudyResult, StudySettings, run_study
    from .timeunits import DEFAULT_TIMES_S, parse_times


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use and kept."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = ["BASELINES", "baseline", "Cell", "DeviceModel", "device_names", "get_device",
           "load_tabulated", "WeightprogError", "Mapping", "ProgrammedTensor", "program_weights",
           "TNMSE", "TNMSEResult", "rescore", "ExpectedTNMSE", "bound", "pointwise_strategy",
           "WeightSample", "default_sample", "load_distribution",
           "sample_from_array", "sample_from_module", "sample_from_tensors", "sample_from_values",
           "Strategy", "DEFAULT_TIMES_S", "parse_times", "OptimizeSettings", "optimize", "OptimizeResult",
           "optimize_per_layer", "LayerResult", "Score", "Scored", "Scoreboard", "Comparison", "compare_devices",
           "StudySettings", "StudyResult", "run_study", "evaluate_over_time", "OverTimeResult", "SearchBars",
           "__version__"]
