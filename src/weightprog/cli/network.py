"""`optimize --model`: the options that score candidates on a network, read into library settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import click

from ..choices import DEFAULT_SELECT, PERIPHERIES
from ..errors import WeightprogError
from ..settings import Mapping, NetworkSettings
from .model_spec import load_model_spec
from .options import option_names, setting_default, setting_option

if TYPE_CHECKING:  # loaded when a command runs, not when the command line starts
    import torch

    from ..nn.spec import ModelSpec


def network_options(f):
    """--network-repeats, --periphery and --eval-size on command `f`."""
    for option in reversed([
        setting_option(NetworkSettings, "repeats", "--network-repeats", "network_repeats", type=int,
                       help="With --model: programming realisations per candidate on the network."),
        setting_option(NetworkSettings, "periphery", type=click.Choice(sorted(PERIPHERIES)),
                       help="With --model: the periphery the network runs through."),
        click.option("--eval-size", type=click.IntRange(min=1), default=None,
                     help="With --model and a reference workload: its first N test items."),
    ]):
        f = option(f)
    return f


@dataclass(frozen=True)
class NetworkInputs:
    """The model spec of `--model`, how candidates are scored on it, and the rule that chooses."""

    spec: ModelSpec
    label: str
    settings: NetworkSettings
    rule: str | None
    """A rule of `choices.SELECT_RULES`, or None (a spec without validate and no --select: weight error alone)."""

    @classmethod
    def read(cls, model: str | None, select: str | None, repeats: int, periphery: str, eval_size: int | None,
             seed: int, search: dict) -> NetworkInputs | None:
        """The options, validated (None without --model).

        Raises
        ------
        WeightprogError
            --model with --weights or --distribution, --select network on a spec without validate,
            or network options without --model.
        """
        if model is None:
            if (select is not None or eval_size is not None or repeats != setting_default(NetworkSettings, "repeats")
                    or periphery != setting_default(NetworkSettings, "periphery")):
                raise WeightprogError("--select, --network-repeats, --periphery and --eval-size need --model")
            return None
        if search.get("weights") or search.get("distribution"):
            raise WeightprogError("--model: the weights are the model's; give no --weights or --distribution")
        from ..nn.periphery import get_periphery  # here: weightprog.nn (and scipy.stats) only with --model

        with option_names():
            settings = NetworkSettings(repeats=repeats, seed=seed, periphery=get_periphery(periphery),
                                       mapping=Mapping(normalise=search.get("normalise") or Mapping.normalise))
        spec = load_model_spec(model, eval_size)
        if select not in (None, "tnmse") and spec.validate is None:
            raise WeightprogError(f"--select {select}: the model spec {model} has no 'validate' (held-out data); "
                                  f"choices are never made on its test data")
        rule = select or (DEFAULT_SELECT if spec.validate is not None else None)
        return cls(spec, f"model:{model}", settings, rule)

    def values(self) -> tuple[torch.Tensor, str]:
        """The model's analog weights normalised as deployed, and their label."""
        from ..nn.discover import find_analog_weights
        from ..nn.limit import deployed_values

        weights = find_analog_weights(self.spec.model)
        return deployed_values(weights, self.settings.mapping), self.label

    def fisher(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's analog weights as deployed and each one's Fisher importance (`--weighting
        fisher`, `nn.fisher.deployed_fisher`): the same values as `values()`.

        Raises
        ------
        WeightprogError
            A spec without `loss`.
        """
        from ..nn.fisher import deployed_fisher

        return deployed_fisher(self.spec, self.settings.mapping)
