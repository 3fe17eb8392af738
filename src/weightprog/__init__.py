"""weightprog: optimised weight programming for analogue in-memory computing.

Public API; everything else may change.
"""

from ._version import __version__
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

__all__ = ["BASELINES", "baseline", "Cell", "DeviceModel", "device_names", "get_device",
           "load_tabulated", "WeightprogError", "Mapping", "ProgrammedTensor", "program_weights",
           "TNMSE", "TNMSEResult", "rescore", "ExpectedTNMSE", "bound", "pointwise_strategy",
           "WeightSample", "default_sample", "load_distribution",
           "sample_from_array", "sample_from_module", "sample_from_tensors", "sample_from_values",
           "Strategy", "DEFAULT_TIMES_S", "parse_times", "OptimizeSettings", "optimize", "OptimizeResult",
           "optimize_per_layer", "LayerResult", "Score", "Scored", "Scoreboard", "Comparison", "compare_devices",
           "StudySettings", "StudyResult", "run_study", "evaluate_over_time", "OverTimeResult", "SearchBars",
           "__version__"]
