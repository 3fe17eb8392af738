"""The pointwise optimum: each weight value's device targets chosen on its own (no table shape
imposed), by alternating minimisation over targets and read-out scales; with one free scale per
time it is the bound (`bound`), with the deployed drift compensation the best any table reaches
under it (`pointwise_strategy` makes a table of it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch

from .model import ExpectedTNMSE
from .moments import interpolate
from .nodes import drift_alpha, node_error, read_stats


@dataclass
class PointwiseResult:
    """Targets chosen for each weight value on its own (no table shape imposed), and its error."""

    u: torch.Tensor
    """(N,) |u| nodes (quantile bins of the density, two nodes per bin)."""
    prob: torch.Tensor
    """(N,) share of the weights at each node."""
    targets: torch.Tensor
    """(N, 2P) device targets at each node, µS."""
    significance: tuple[float, ...]
    scales: torch.Tensor
    """(T,) read-out scale per time, 1/µS: ŵ_k = scale_k · Σ f_p (g⁺_p − g⁻_p)."""
    per_time: torch.Tensor
    """(T,) expected NMSE at each time."""
    compensated: bool
    """False: one free scale per time (the bound); True: scale = α_k/β with α_k the deployed drift
    compensation of this mapping and β free (the best achievable under that compensation)."""
    beta: float | None = None
    """With `compensated`: the mapping's β, µS of W_hw per unit weight."""
    unbiased: bool = False
    """True: each weight's mean read-out was held at its value (E[scale_k·V_k] = u), and `per_time`
    is the (pure noise) error of that constrained mapping."""

    @property
    def mean(self) -> float:
        return float(self.per_time.mean())


class Iterate(NamedTuple):
    """One step of the alternating solve."""

    error: float
    """The objective: the expected TNMSE (the mean of `per_time`), its bias part weighted when the
    solve holds the mean read-out unbiased."""
    targets: torch.Tensor
    """(N, 2P) device targets at each node, µS."""
    scales: torch.Tensor
    """(T,) the best read-out scales for these targets."""
    per_time: torch.Tensor
    """(T,) expected NMSE at each time."""


UNBIASED_WEIGHT = 1e4
"""Weight of the squared bias against the variance when the mean read-out is held at the weight
(`Pointwise(unbiased=True)`): a penalty large enough that the bias left is far below the noise
(measured on the Fashion-MNIST ResNet-32 weights, `pcm-lowdrift`: under 0.02 % of the error), small
enough for well-conditioned float64 steps."""


CONTINUATION = (10.0, 100.0, 1e3, UNBIASED_WEIGHT)
"""Bias weights the unbiased search steps through, from the least-squares mapping (weight 1)."""


class Pointwise:
    """Per-node minimisation of the expected error over every mapping u → targets in
    [g_min, g_max]^(2P), for a density, device and cell (all in float64). Many small tensor
    operations: on a busy machine it is fastest on one torch thread, which the caller sets.

    With `unbiased`, the squared bias (scale·E V − u)² is weighted by `UNBIASED_WEIGHT`: the minimum
    of the noise alone subject to an unbiased mean read-out at every weight and time (a penalty,
    so the constraint holds to a tiny residual)."""

    def __init__(self, model: ExpectedTNMSE, significance: Sequence[float], bins: int = 48,
                 levels: int = 13, unbiased: bool = False):
        self.model, self.sig = model, tuple(float(f) for f in significance)
        self.unbiased = unbiased
        self.bias_weight = UNBIASED_WEIGHT if unbiased else 1.0
        self.pairs = len(self.sig)
        lookup = model.moments.lookup_table(torch.float64)
        self._at = lambda g: interpolate(lookup, model.g0, model.step, g)
        one = torch.tensor([0.0, 1.0], dtype=torch.float64)
        nodes = model.nodes(one, bins)
        self.u, self.prob, self.importance = nodes.u, nodes.prob, nodes.importance
        dev = model.device
        self.levels = torch.linspace(dev.g_min, dev.g_max, levels, dtype=torch.float64)
        self.signed = torch.tensor([s * f for f in self.sig for s in (1.0, -1.0)], dtype=torch.float64)

    def stats(self, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance (…, K) of V_k = Σ s_d r_d (µS) for targets g (…, 2P)."""
        return read_stats(self._at(g), self.signed[:, None])

    def alpha(self, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        """(T,) deployed drift compensation of a mapping (nodes' mean/var (N, K))."""
        return drift_alpha(mean, var, self.prob, self.model.compensation)

    def objective(self, u: torch.Tensor, g: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
        """Per-node error Σ_k (a_k² E V_k² − 2 a_k u E V_k + u²)/T for targets g (N, …, 2P)."""
        mean, var = self.stats(g)
        mean, var = mean[..., 1:], var[..., 1:]
        inner = u.reshape((-1,) + (1,) * (mean.dim() - 1))
        return self._node_objective(mean, var, self._terms(scales, inner))

    def _terms(self, scales: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The parts of `_node_objective` that do not depend on the targets (a refinement's rounds
        share them): a², 2w·a·u and w·u²."""
        w = self.bias_weight
        return scales ** 2, 2 * w * scales * u, w * u ** 2

    def _node_objective(self, mean: torch.Tensor, var: torch.Tensor,
                        terms: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Mean over times of a²·Var V + w·(a·E V − u)², w the bias weight (1: the squared error),
        as a²·(Var V + w·(E V)²) − 2w·a·u·E V + w·u² with the `_terms` (the same bits as written
        out: w·x is x itself for w = 1)."""
        square, cross, const = terms
        second = mean ** 2 if self.bias_weight == 1.0 else self.bias_weight * mean ** 2
        return (square * (var + second) - cross * mean + const).mean(-1)

    def errors(self, g: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
        """(T,) expected error per time of a mapping (N, 2P) at scales (T,)."""
        mean, var = self.stats(g)
        return (self.importance[:, None] * node_error(mean[:, 1:], var[:, 1:], scales, self.u[:, None])).sum(0)

    def penalised(self, g: torch.Tensor, scales: torch.Tensor) -> float:
        """The objective the solve minimises: the expected error, its bias part weighted by the bias
        weight (the error itself without `unbiased`)."""
        mean, var = self.stats(g)
        bias = (scales * mean[:, 1:] - self.u[:, None]) ** 2
        per_time = (self.importance[:, None] * (scales ** 2 * var[:, 1:] + self.bias_weight * bias)).sum(0)
        return float(per_time.mean())

    def best_scales(self, g: torch.Tensor, compensated: bool) -> torch.Tensor:
        """(T,) the scales minimising the (bias-weighted) objective for targets g (N, 2P)."""
        mean, var = self.stats(g)
        w = self.bias_weight
        num = w * (self.importance[:, None] * self.u[:, None] * mean[:, 1:]).sum(0)
        den = (self.importance[:, None] * (var[:, 1:] + w * mean[:, 1:] ** 2)).sum(0)
        if not compensated:
            return num / den
        alpha = self.alpha(mean, var)
        y = (alpha * num).sum() / (alpha ** 2 * den).sum()
        return alpha * y

    # --- minimisation over targets for fixed scales -------------------------------------------
    def _pair_states(self) -> torch.Tensor:
        lv = self.levels
        return torch.cartesian_prod(lv, lv)  # (S, 2): g⁺, g⁻

    def coarse(self, u: torch.Tensor, scales: torch.Tensor, starts: int = 2) -> torch.Tensor:
        """(N, starts, 2P) best targets on the level grid (every combination for P ≤ 2; block
        coordinate descent over pairs from several starts for P ≥ 3)."""
        states = self._pair_states()
        S = states.shape[0]
        if self.pairs == 1:
            obj = self.objective(u, states[None].expand(u.numel(), -1, -1), scales)
            idx = obj.topk(min(starts, S), largest=False).indices
            return states[idx]
        if self.pairs == 2:
            # objective = Σ_k a_k²(var_a + var_b + w(m_a + m_b)²)/T − 2w a_k u (m_a + m_b)/T + w u²
            (ma, va), (mb, vb) = (self._pair_stats(states, p) for p in range(2))
            w = self.bias_weight
            a2 = scales ** 2 / scales.numel()
            a1 = 2 * w * scales / scales.numel()
            const = ((va + w * ma ** 2) * a2).sum(-1)[:, None] + ((vb + w * mb ** 2) * a2).sum(-1)[None]
            const = const + 2 * w * (ma * a2) @ mb.T  # (S, S)
            lin = (ma * a1).sum(-1)[:, None] + (mb * a1).sum(-1)[None]
            out = []
            for chunk in torch.split(u, 16):
                obj = const[None] - chunk[:, None, None] * lin[None]
                idx = obj.reshape(chunk.numel(), -1).topk(starts, largest=False).indices
                out.append(torch.cat([states[idx // S], states[idx % S]], -1))
            return torch.cat(out)
        return self._coordinate_descent(u, scales, starts)

    def _pair_stats(self, states: torch.Tensor, p: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance (S, T) of pair p's share f_p·(r⁺ − r⁻) for its states (S, 2)."""
        mom = self._at(states)  # (S, 2, 2K)
        k = mom.shape[-1] // 2
        f = self.sig[p]
        return (f * (mom[:, 0, 1:k] - mom[:, 1, 1:k]), f * f * (mom[:, 0, k + 1:] + mom[:, 1, k + 1:]))

    def _coordinate_descent(self, u, scales, starts):
        states = self._pair_states()
        n, S, P = u.numel(), states.shape[0], self.pairs
        rng = torch.Generator().manual_seed(0)
        g = self.levels[torch.randint(len(self.levels), (n, starts, 2 * P), generator=rng)]
        g[:, 0] = self.levels[0]
        for _ in range(4):
            for p in range(P):
                trial = g[:, :, None, :].expand(n, starts, S, 2 * P).clone()
                trial[..., 2 * p:2 * p + 2] = states
                obj = self.objective(u, trial, scales)  # (n, starts, S)
                best = obj.argmin(-1)
                g[..., 2 * p:2 * p + 2] = states[best]
        return g

    def refine(self, u: torch.Tensor, g: torch.Tensor, scales: torch.Tensor, rounds: int = 18,
               first_step: float | None = None) -> torch.Tensor:
        """Pattern search around each start (N, M, 2P), shrinking the step; best per node (N, 2P).
        Moves: each device alone, and every two together (a pair's common mode, a trade between
        pairs). Each device's moments are looked up once per round at its three candidate values."""
        dev = self.model.device
        n, m, d = g.shape
        step = float(self.levels[1] - self.levels[0]) if first_step is None else 2 * first_step
        moves = [[1] * d]
        for i in range(d):
            for a in (0, 2):
                moves.append([a if k == i else 1 for k in range(d)])
            for j in range(i + 1, d):
                for a, b in ((0, 0), (0, 2), (2, 0), (2, 2)):
                    moves.append([a if k == i else b if k == j else 1 for k in range(d)])
        idx = torch.tensor(moves)  # (M, d): 0 = down a step, 1 = stay, 2 = up
        onehot = torch.nn.functional.one_hot(idx, 3).transpose(1, 2).reshape(len(moves), 3 * d).double()
        delta = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64)
        best = g.clone()
        best_obj = self.objective(u, best, scales)
        terms = self._terms(scales, u.reshape(-1, 1, 1, 1))
        signed, signed2 = self.signed[:, None], self.signed[:, None] ** 2
        for r in range(rounds):
            if r % 2 == 0:  # two passes per step size
                step *= 0.5
            values = (best[:, :, None, :] + step * delta[:, None]).clamp(dev.g_min, dev.g_max)  # (n, m, 3, d)
            mom = self._at(values)  # (n, m, 3, d, 2K)
            k = mom.shape[-1] // 2
            cm = (signed * mom[..., 1:k]).reshape(n, m, 3 * d, -1)
            cv = (signed2 * mom[..., k + 1:]).reshape(n, m, 3 * d, -1)
            obj = self._node_objective(_moved(onehot, cm), _moved(onehot, cv), terms)  # (n, m, M)
            move = obj.argmin(-1)  # (n, m)
            cobj = obj.gather(2, move[..., None]).squeeze(-1)
            cand = values.gather(2, idx[move][:, :, None, :]).squeeze(2)
            better = cobj < best_obj
            best = torch.where(better[..., None], cand, best)
            best_obj = torch.where(better, cobj, best_obj)
        pick = best_obj.argmin(-1)
        return best[torch.arange(n), pick]

    def minimise(self, u: torch.Tensor, scales: torch.Tensor, previous: torch.Tensor | None = None,
                 coarse: bool = True) -> torch.Tensor:
        """(N, 2P) best targets per node for fixed scales (coarse grid, then refined; the previous
        mapping is one more start, so an outer iteration never gets worse). Without `coarse`: a
        short refinement of the previous mapping only."""
        if not self.unbiased:
            return self._minimise(u, scales, previous, coarse)
        # Under a heavy bias weight nearly any combination that hits the mean is a local minimum, so
        # the search follows the least-squares mapping as the weight grows (continuation), and keeps
        # per node the better of that and the previous mapping refined at the full weight.
        final = self.bias_weight
        try:
            self.bias_weight = 1.0
            g = self._minimise(u, scales, previous, coarse)
            for w in CONTINUATION:
                self.bias_weight = w
                g = self.refine(u, g[:, None], scales, rounds=14, first_step=0.25)
        finally:
            self.bias_weight = final
        if previous is None:
            return g
        kept = self.refine(u, previous[:, None], scales, rounds=10, first_step=0.05)
        better = self.objective(u, kept, scales) < self.objective(u, g, scales)
        return torch.where(better[:, None], kept, g)

    def _minimise(self, u: torch.Tensor, scales: torch.Tensor, previous: torch.Tensor | None,
                  coarse: bool) -> torch.Tensor:
        """`minimise` at the current bias weight."""
        if not coarse:
            if previous is None:
                raise ValueError("Pointwise.minimise: coarse=False refines `previous`, which is missing")
            return self.refine(u, previous[:, None], scales, rounds=10, first_step=0.25)
        starts = self.coarse(u, scales)
        if previous is not None:
            starts = torch.cat([starts, previous[:, None]], 1)
        return self.refine(u, starts, scales)

    def solve(self, compensated: bool, iterations: int = 12) -> PointwiseResult:
        """Alternate: best targets per node for the scales, best scales for the targets (with
        `compensated`: α_k from the mapping as the hardware computes it, β free), starting from
        lsp-first. Mapping and scales trade off along a shallow valley (a larger mapping with
        smaller scales), so each step also tries the scale change extrapolated 2×, 4× and 8×."""
        from ..baselines import baseline  # local: the start only
        from ..cell import Cell
        dev = self.model.device
        g = baseline("lsp-first", Cell(self.sig), dev.g_min, dev.g_max).targets(self.u)[0]
        state = self._iterate(g, compensated)
        for _ in range(iterations):
            new = self._iterate(self.minimise(self.u, state.scales, state.targets), compensated)
            ratio = new.scales / state.scales
            for power in (2, 4, 8):
                trial = self._iterate(self.minimise(self.u, new.scales * ratio ** (power - 1), new.targets,
                                                    coarse=False), compensated)
                if trial.error >= new.error:
                    break
                new = trial
            if new.error >= state.error * (1 - 1e-5):
                state = min(state, new, key=lambda x: x.error)
                break
            state = new
        beta = None
        if compensated:
            mean, var = self.stats(state.targets)
            beta = float(self.alpha(mean, var)[0] / state.scales[0])
        return PointwiseResult(self.u, self.prob, state.targets, self.sig, state.scales, state.per_time,
                               compensated, beta, self.unbiased)

    def _iterate(self, targets: torch.Tensor, compensated: bool) -> Iterate:
        """A mapping with its best scales and their (bias-weighted) objective."""
        scales = self.best_scales(targets, compensated)
        per_time = self.errors(targets, scales)
        error = float(per_time.mean()) if not self.unbiased else self.penalised(targets, scales)
        return Iterate(error, targets, scales, per_time)

    def targets_at(self, u: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
        """(len(u), 2P) best targets at arbitrary |u| values for fixed scales."""
        return self.minimise(u.double(), scales)


def _moved(onehot: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
    """`onehot @ stats` (n, m, M, T): each move's sum of its devices' stats (n, m, 3d, T), as one
    matrix product instead of n·m small ones (~4× faster; each sum adds the same terms in the
    same order, tests/test_expected.py)."""
    n, m, rows, t = stats.shape
    flat = stats.permute(2, 0, 1, 3).reshape(rows, n * m * t)
    return (onehot @ flat).view(-1, n, m, t).permute(1, 2, 0, 3)


def bound(model: ExpectedTNMSE, significance: Sequence[float], bins: int = 48) -> PointwiseResult:
    """The lowest expected TNMSE any mapping weight → targets in [g_min, g_max]^(2P) reaches with
    one free read-out scale per time (no drift compensation can do better), for this cell.

    Parameters
    ----------
    model
        The expected error (density, device, times).
    significance
        The cell's significance factors, one per pair.
    bins
        Quantile bins of |u| (two nodes each) at which the mapping is optimised.

    Returns
    -------
    PointwiseResult
        The bound (`mean`, `per_time`) and the mapping that reaches it, `compensated` False.
    """
    return Pointwise(model, significance, bins).solve(compensated=False)

