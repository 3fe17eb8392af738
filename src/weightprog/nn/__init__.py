"""Analog view of any torch model: layer discovery, crossbar mapping, periphery, evaluation over time.

    from weightprog.nn import evaluate_over_time
    result = evaluate_over_time(model, evaluate_fn, ["lsp-first"], device="pcm", repeats=25, seed=0)
"""

from .attach import Tracking, attached
from .calibration import Clipping, LayerClipping, Ranges, calibrate
from .discover import AnalogWeight, find_analog_weights
from .evaluate import evaluate_over_time, realisation_seed, resolve_strategies
from .gradients import GradientCorrelation, LayerGradients, gradient_weight_correlation
from .mapping import LayerMapping, MappingReport, mapping_report
from .periphery import PRESETS as PERIPHERY_PRESETS
from .periphery import Periphery, get_periphery, quantise
from .program import ProgrammedModel, WeightSwap
from .result import OverTimeResult

__all__ = ["AnalogWeight", "find_analog_weights", "OverTimeResult", "evaluate_over_time",
           "realisation_seed", "resolve_strategies", "GradientCorrelation", "LayerGradients",
           "gradient_weight_correlation", "LayerMapping", "MappingReport", "mapping_report",
           "PERIPHERY_PRESETS", "Clipping", "LayerClipping", "Periphery", "Ranges", "Tracking", "attached", "calibrate",
           "get_periphery", "quantise", "ProgrammedModel", "WeightSwap"]
