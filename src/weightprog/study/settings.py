"""The study's settings (`StudySettings`), validated when made, and the roles it evaluates.

Imports nothing heavy at the top: the command line builds its options and defaults from these
fields without loading torch (`weightprog study --help` answers at once)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from .. import validate
from ..choices import DEFAULT_ROWS, DEFAULT_SELECT, PERIPHERIES, SEARCH_ON, SELECT_RULES, STUDY_PERIPHERY

if TYPE_CHECKING:
    from ..nn.precision import PrecisionTarget
    from ..search.run import OptimizeSettings

STUDY_TIMES_S = (1.0, 3600.0, 86400.0, 30 * 86400.0, 365 * 86400.0)
"""The paper's times after programming: 1 s, 1 h, 1 d, 30 d, 1 y."""
DEFAULT_EVAL_SIZE = {"fmnist-resnet32": 1000, "ptb-lstm": 8000, "sentiment-minilm": 256}
ROLES = ("naive", "best hand-crafted", "optimised", "limit")
"""What each cell evaluates: lsp-first at F = 1, the hand-crafted strategy with the lowest re-scored
weight error, the strategy chosen on the network's held-out data, and the device's limit
(`limit-chosen`: at each time the better of `limit` and `limit-mse` on held-out data, nn/limit.py)."""


BESIDE = "standard"
"""The periphery a study runs beside its own by default, at its last time."""


@dataclass(frozen=True)
class Beside:
    """Another periphery run beside the study's own, at some of the study's times: every strategy
    on the same realisations and examples, so each is compared with itself under the study's
    periphery (paired)."""

    periphery: str
    times_s: tuple[float, ...]

    @classmethod
    def parse(cls, text: str, study_times_s: tuple[float, ...]) -> Beside:
        """`PERIPHERY` (at the study's last time) or `PERIPHERY@T1,T2…` (times the study runs)."""
        from ..timeunits import format_times, parse_times

        name, sep, when = text.partition("@")
        times = parse_times(when) if sep else study_times_s[-1:]
        missing = [t for t in times if t not in study_times_s]
        if missing:
            raise ValueError(f"{text!r}: {', '.join(format_times(missing))} is not one of the study's times "
                             f"({', '.join(format_times(study_times_s))})")
        return cls(name, tuple(times))


@dataclass(frozen=True)
class StudySettings:
    """The study's settings, validated when made (one line naming the field and what is allowed)."""

    workloads: tuple[str, ...] = ("ptb-lstm", "fmnist-resnet32", "sentiment-minilm")
    devices: tuple[str, ...] = ("pcm", "pcm-lowdrift")
    variants: tuple[str, ...] = ("fp", "hwa")
    times_s: tuple[float, ...] = STUDY_TIMES_S
    repeats: int = 25
    """Programming realisations per strategy (the paper: 25)."""
    block: int = 5
    """Realisations per evaluation job: the unit of resumption and of distribution."""
    seed: int = 0
    eval_size: dict = field(default_factory=lambda: dict(DEFAULT_EVAL_SIZE))
    """Test items per evaluation, per workload (a workload not listed: its whole test set)."""
    periphery: str = STUDY_PERIPHERY
    beside: tuple[str, ...] | None = None
    """Other peripheries run beside `periphery` (`Beside.parse`); None: `standard` at the last time
    (the study's earlier periphery, static ranges per layer; docs/NN.md) unless the study runs
    `standard` itself."""
    max_generations: int = 15
    popsize: int = 10
    f_max: int = 4
    sample_size: int = 10_240
    polish_steps: int = 30
    compile: bool = False
    """torch.compile the search objective (pays off only for long searches)."""
    search_on: str = "each"
    """'each': one search per trained variant (on its own weights); 'fp': the FP weights' strategy for both."""
    select: str = DEFAULT_SELECT
    """How the optimised strategy is chosen among the search's candidates (`choices.SELECT_RULES`)."""
    network_repeats: int = 5
    """Realisations per candidate when choosing on the network (the optimised strategy among the
    search's candidates, and the limit's mapping and read-out gain)."""
    roles: tuple[str, ...] = ROLES
    """The strategies evaluated in each cell (a subset of ROLES, in that order)."""
    threads: int | None = None
    """torch threads of each job (None: leave the process's)."""
    precision: str | None = None
    """`P` or `P%` for every workload, or `WORKLOAD=P,WORKLOAD=P%` for those named (accuracy wants
    0.005, perplexity 1 %): rounds of more test items per workload until every paired comparison is
    within ±P (study/precision.py); None (or a workload not named): one round on `eval_size`."""

    def __post_init__(self):
        from ..devices import get_device
        from ..nn.periphery import get_periphery
        from ..workloads import WORKLOADS

        for name in ("workloads", "devices", "variants", "roles"):
            value = getattr(self, name)
            if isinstance(value, str) or not value:
                raise validate.SettingError(name, f"a non-empty list, got {value!r}")
            object.__setattr__(self, name, tuple(value))
        if isinstance(self.beside, str):
            raise validate.SettingError("beside", f"a list, got {self.beside!r}")
        beside = (BESIDE,) if self.beside is None and self.periphery != BESIDE else self.beside or ()
        object.__setattr__(self, "beside", tuple(beside))
        for w in self.workloads:
            validate.choice(w, "workloads", WORKLOADS)
        for v in self.variants:
            validate.choice(v, "variants", ("fp", "hwa"))
        for r in self.roles:
            validate.choice(r, "roles", ROLES)
        object.__setattr__(self, "roles", tuple(r for r in ROLES if r in self.roles))
        for d in self.devices:
            get_device(d)
        for w, n in self.eval_size.items():
            validate.integer(n, f"eval_size[{w}]", 1)
        validate.integer(self.repeats, "repeats", 1)
        validate.integer(self.block, "block", 1)
        validate.integer(self.network_repeats, "network_repeats", 1)
        if self.threads is not None:
            validate.integer(self.threads, "threads", 1)
        validate.choice(self.search_on, "search_on", SEARCH_ON)
        validate.choice(self.select, "select", SELECT_RULES)
        get_periphery(self.periphery)
        validate.integer(self.sample_size, "sample_size", DEFAULT_ROWS)
        if self.sample_size % DEFAULT_ROWS:
            raise validate.SettingError("sample_size", f"must be a multiple of {DEFAULT_ROWS}, got {self.sample_size}")
        if self.precision is not None:
            try:
                self.precision_targets()
            except ValueError as exc:
                raise validate.SettingError("precision", str(exc).removeprefix("precision: ")) from None
        search = self.optimize_settings()  # seed, times, search sizes: OptimizeSettings' own ranges
        object.__setattr__(self, "times_s", search.times_s)
        seen = {self.periphery}
        for run in self.beside_runs():
            validate.choice(run.periphery, "beside", PERIPHERIES)
            if run.periphery in seen:
                raise validate.SettingError("beside", f"{run.periphery!r} is the study's periphery or listed twice")
            seen.add(run.periphery)

    def precision_targets(self) -> dict[str, PrecisionTarget]:
        """`precision` per workload it names (every workload for a bare `P`); {} without it."""
        from ..nn.precision import PrecisionTarget

        if self.precision is None:
            return {}
        if "=" not in self.precision:
            target = PrecisionTarget.parse(self.precision)
            return dict.fromkeys(self.workloads, target)
        targets = {}
        for item in self.precision.split(","):
            workload, _, value = item.partition("=")
            workload = workload.strip()
            if workload not in self.workloads:
                raise ValueError(f"precision: {workload!r} is not a workload of this study "
                                 f"({', '.join(self.workloads)})")
            targets[workload] = PrecisionTarget.parse(value)
        return targets

    def beside_runs(self) -> tuple[Beside, ...]:
        """`beside`, parsed (validated when the settings are made)."""
        from ..errors import WeightprogError

        try:
            return tuple(Beside.parse(text, tuple(self.times_s)) for text in self.beside or ())
        except (ValueError, WeightprogError) as exc:
            raise validate.SettingError("beside", str(exc)) from None

    def optimize_settings(self) -> OptimizeSettings:
        """The search each (workload, device, variant) runs, for the times it is evaluated at."""
        from ..search.run import OptimizeSettings

        return OptimizeSettings(seed=self.seed, max_generations=self.max_generations, popsize=self.popsize,
                                f_max=self.f_max, times_s=tuple(self.times_s), rescore_blocks=5,
                                polish_steps=self.polish_steps, polish=self.polish_steps > 0, compile=self.compile)

    def blocks(self) -> list[tuple[int, int]]:
        """(first realisation, count) of each evaluation job."""
        return [(first, min(self.block, self.repeats - first)) for first in range(0, self.repeats, self.block)]

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}
