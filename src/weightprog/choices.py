"""The named choices (and the sample's default shape) that settings and options offer, in a module
that imports nothing: the command line builds its options (`click.Choice`, defaults) from here
without loading torch, numpy or matplotlib, so `weightprog --help` and an argument error answer at
once (issue 25). The modules that act on a choice import its names from here."""

from __future__ import annotations

BASELINES = ("single-pair", "lsp-first", "msp-first")
"""Names of the hand-crafted strategies `baselines.baseline` builds."""
NAIVE = "lsp-first"
"""The paper's naive mapping, at F = 1."""
LIMIT = "limit"
"""The strategy name `evaluate`, `study` and `optimize --model` take for the limit (unbiased, nn/limit.py)."""
LIMIT_MSE = "limit-mse"
"""The strategy name of the least-squares limit: the weight-error bound's mapping (`evaluate`)."""
LIMIT_CHOSEN = "limit-chosen"
"""The strategy name of the better of `limit` and `limit-mse` at each time on held-out data (`evaluate`)."""
LIMITS = (LIMIT, LIMIT_MSE, LIMIT_CHOSEN)
"""The limits' strategy names (nn/limit.py)."""
OBJECTIVES = ("expected", "mc")
"""What the search minimises: the expected TNMSE (expected.py) or the Monte-Carlo TNMSE (metric.py)."""
WEIGHTINGS = ("density", "fisher")
"""What each weight's error counts by: `density` (every weight alike: the weight error) or `fisher`
(its diagonal empirical Fisher information on non-test data: an approximation of the loss increase)."""
METHODS = ("auto", "de", "pointwise")
"""`de`: differential evolution over the strategy space (the paper's method); `pointwise`: the
pointwise optimum under the deployed drift compensation as a dense table (expected.py); `auto`:
both, the better by Monte-Carlo re-score."""
MODES = ("exact", "free")
"""The strategy space's modes (search/space.py): every grid weight represented exactly, or every device free."""
GRID_PLACEMENTS = ("quantile", "uniform")
"""Where the strategy table's grid points sit (search/space.py `make_grid`)."""
SELECT_RULES = ("network", "tnmse", "resolved")
"""How the optimised strategy is chosen among a search's candidates. `network`: the best time-averaged
metric on the network's held-out data; `tnmse`: the lowest weight error (the search's own pick);
`resolved`: the lowest weight error unless a candidate is better on the held-out data at some time
by a paired difference resolved at 95 %, and worse at none (then the best of those on the network):
where the held-out data cannot separate the candidates, `network` follows its noise."""
DEFAULT_SELECT = "resolved"
"""The rule where held-out data is there (`optimize --model`, `study`): under `network` the study's
"optimised" MiniLM strategy on `pcm` came out as lsp-first F = 1 (naive) for both models, by
0.2–0.5 points on 3 realisations × 256 held-out sentences, far inside their noise (docs/RESULTS.md,
part 5)."""
PERIPHERIES = ("ideal", "standard", "io8", "chip", "chip-tile", "chip-8bit")
"""Names of the periphery presets, in the order of `nn.periphery.PRESETS` (a test keeps them equal)."""
NORMALISE_UNITS = ("column", "tile", "tensor")
"""How a mapping normalises weights (hardware.py)."""
REFERENCES = ("read", "programmed")
"""Drift compensation's reference: a calibration read after programming, or the programmed state (hardware.py)."""
WEIGHT_NOISE = ("row", "device")
"""HWA weight-noise forms: `row` (`HWAConfig.noise` × the row's max |w|), `device` (`HWAConfig.noise_device`)."""
SEARCH_ON = ("each", "fp")
"""Which weights a study variant's strategy is searched on: its own (`each`) or the FP model's (`fp`)."""
STUDY_PERIPHERY = "chip-8bit"
"""The study's periphery: `standard`'s 8-bit converters and noise run as chips run them (docs/NN.md)."""
WORKLOADS = ("ptb-lstm", "fmnist-resnet32", "sentiment-minilm")
"""The reference workloads (`weightprog.workloads`)."""
RESUMABLE_WORKLOADS = ("fmnist-resnet32", "ptb-lstm")
"""Workloads whose training can continue from the committed FP checkpoint (`TrainSettings.resume`)."""
VARIANTS = ("fp", "hwa")
"""A workload's trained variants: floating point, hardware-aware."""
PROPERTIES = ("programming", "drift_mean", "drift_std", "read", "g_max")
"""Device properties `device advise` scales (`Scales`); for all but g_max smaller is better."""


DEFAULT_ROWS = 512
"""Weights per crossbar column of a weight sample."""
DEFAULT_SIZE = 10_240
"""Weights in the search's sample: docs/MODEL.md §8, the paper's proxy size, a 512 × 20 tile."""


def baseline_name(text: str) -> str:
    """`lsp_first` (a JSON key, or the older spelling of options and sweep files) -> `lsp-first`."""
    return text.replace("_", "-")
