"""Dense strategy tables from pointwise solutions: the pointwise optimum under the deployed drift
compensation (`pointwise_strategy`, polished by gradient) and the limits' mappings (`limit_strategy`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..adam import Adam
from ..concurrency import Once, in_order, quiet
from ..strategy import Strategy
from .model import ExpectedTNMSE
from .pointwise import Pointwise, PointwiseResult


def pointwise_strategy(model: ExpectedTNMSE, significance: Sequence[float], points: int = 41,
                       polish_steps: int = 150, solution: PointwiseResult | None = None,
                       name: str = "pointwise", expressible: bool = False) -> tuple[Strategy, PointwiseResult]:
    """The pointwise optimum under the deployed drift compensation as a dense strategy.

    The compensated pointwise solution (α from the mapping as the hardware computes it, β free)
    gives the read-out scales; the best targets for them are found at `points` grid weights
    (quantiles of |u| and a uniform set, 0 and 1 included), and the table and β are then
    polished by gradient on the expected error with the real compensation (kept if it helps).
    The table need not be mirrored-monotonic or smooth; it may clip the largest weights
    (W_hw(1) < β). With `expressible`, β is tied to the table's largest weight (β = W_hw(1)), the
    form aihwkit's CustomPairConductanceConverter can express.

    Parameters
    ----------
    model
        The expected error (density, device, times, compensation).
    significance
        The cell's significance factors, one per pair.
    points
        Grid weights the table starts from (more are inserted where the optimum bends).
    polish_steps
        Adam steps of the final polish (0: none).
    solution
        A compensated pointwise solution already computed (else it is solved here).
    name
        The strategy's name.
    expressible
        Tie β to the table's largest weight (β = W_hw(1)).

    Returns
    -------
    tuple of (Strategy, PointwiseResult)
        The dense strategy and the compensated pointwise solution it came from.
    """
    pw = Pointwise(model, significance)
    sol = solution or pw.solve(compensated=True)
    dense = _refine_grid(pw, _start_grid(model.values, points), _compensated(sol).scales)
    return _table_strategy(model, pw.sig, sol, dense, polish_steps, name, expressible), sol


def pointwise_strategies(model: ExpectedTNMSE, significance: Sequence[float], solution: PointwiseResult,
                         points: int = 41, polish_steps: int = 150, workers: int = 1) -> dict[str, Strategy]:
    """`pointwise_strategy` both ways for one compensated solution, by name: `pointwise` (β free)
    and `pointwise_expressible` (β tied to the largest weight), the targets at the grid weights
    (the same for both, and much of the cost) found once.

    Parameters
    ----------
    model, significance, points, polish_steps
        As for `pointwise_strategy`.
    solution
        The compensated pointwise solution.
    workers
        Threads: the two polishes at once with 2 (the same tables either way).

    Returns
    -------
    dict of str to Strategy
        `pointwise` and `pointwise_expressible`.
    """
    parts = pointwise_parts(model, significance, solution, points, polish_steps)
    return dict(zip(parts, in_order([quiet(part) for part in parts.values()], workers)))


def pointwise_parts(model: ExpectedTNMSE, significance: Sequence[float], solution: PointwiseResult,
                    points: int = 41, polish_steps: int = 150) -> dict[str, Callable[[], Strategy]]:
    """`pointwise_strategies` as two parts, by name, for a caller to run beside other work: each
    makes its strategy; the dense targets they share are found by whichever asks first (the other
    waits for them)."""
    pw = Pointwise(model, significance)
    dense = Once(lambda: _refine_grid(pw, _start_grid(model.values, points), _compensated(solution).scales))

    def part(name: str, expressible: bool) -> Callable[[], Strategy]:
        return lambda: _table_strategy(model, pw.sig, solution, dense.get(), polish_steps, name, expressible)
    return {"pointwise": part("pointwise", False), "pointwise_expressible": part("pointwise_expressible", True)}


def _compensated(solution: PointwiseResult) -> PointwiseResult:
    if solution.beta is None:
        raise ValueError("pointwise_strategy: `solution` must be compensated (it has no β)")
    return solution


def _table_strategy(model: ExpectedTNMSE, significance: tuple[float, ...], solution: PointwiseResult,
                    dense: tuple[torch.Tensor, torch.Tensor], polish_steps: int, name: str,
                    expressible: bool) -> Strategy:
    """The strategy of a compensated solution's dense targets (grid, table), polished."""
    grid, table = dense[0], dense[1].clone()  # `_express_largest` rewrites its last row
    dev = model.device
    sig = torch.tensor(significance, dtype=torch.float64)
    beta = _compensated(solution).beta
    assert beta is not None  # checked by _compensated
    if expressible:
        beta = _express_largest(table, sig, beta, dev.g_min, dev.g_max)
    strategy = Strategy(grid, table[None], sig[None], torch.tensor([beta]), dev.g_min, dev.g_max, [name])
    if polish_steps > 0:
        strategy = _polish_table(model, strategy, polish_steps, expressible)
    return strategy


def limit_strategy(model: ExpectedTNMSE, significance: Sequence[float], points: int = 41,
                   name: str = "limit", unbiased: bool = False) -> tuple[Strategy, PointwiseResult]:
    """The bound's mapping (or, `unbiased`, the least-noise unbiased one) as a dense table, for
    programming a network at the limit.

    The table holds, per weight value, the targets the solve chose (found at `points` grid weights
    and refined where the mapping bends, as for `pointwise_strategy`); β is 1, so a read gives
    V = Σ f_p (g⁺_p − g⁻_p) in µS, and the ideal read-out at time t_k is `solution.scales[k] · V`
    (one free scale per time: no drift compensation can do better).

    Parameters
    ----------
    model
        The expected error (density, device, times).
    significance
        The cell's significance factors, one per pair.
    points
        Grid weights the table starts from.
    name
        The strategy's name.
    unbiased
        Hold each weight's mean read-out at its value (`Pointwise(unbiased=True)`): the least
        noise an unbiased mapping reaches, instead of the least squared error.

    Returns
    -------
    tuple of (Strategy, PointwiseResult)
        The table (β = 1) and the solution it came from (`scales`, `per_time`, `mean`).
    """
    pw = Pointwise(model, significance, unbiased=unbiased)
    sol = pw.solve(compensated=False)
    grid, table = _refine_grid(pw, _start_grid(model.values, points), sol.scales)
    dev = model.device
    sig = torch.tensor(pw.sig, dtype=torch.float64)
    return Strategy(grid, table[None], sig[None], torch.tensor([1.0]), dev.g_min, dev.g_max, [name]), sol


def _express_largest(table: torch.Tensor, sig: torch.Tensor, beta: float, g_min: float,
                     g_max: float) -> float:
    """Rewrite the table's last row (u = 1) in place to read exactly β, capped at the cell's range
    and filled lsp-first (the form aihwkit's converter can express); the β it reads."""
    span = g_max - g_min
    beta = min(beta, float(sig.sum()) * span)
    remaining = beta
    factors = sig.tolist()
    for p in sorted(range(len(factors)), key=lambda q: factors[q]):
        share = min(remaining, factors[p] * span)
        table[-1, 2 * p], table[-1, 2 * p + 1] = g_min + share / factors[p], g_min
        remaining -= share
    return beta


def _start_grid(values: torch.Tensor, points: int) -> torch.Tensor:
    """Grid weights for a dense table: quantiles of |u| and a uniform set, 0 and 1 included."""
    a = values.abs().double()
    quant = torch.quantile(a[torch.randperm(a.numel(), generator=torch.Generator().manual_seed(0))[:200_000]],
                           torch.linspace(0, 1, points - points // 3, dtype=torch.float64))
    grid = torch.unique(torch.cat([quant, torch.linspace(0, 1, points // 3 + 1, dtype=torch.float64),
                                   torch.tensor([0.0, 1.0], dtype=torch.float64)]).clamp(0, 1))
    keep = torch.cat([torch.tensor([True]), grid.diff() > 1e-4])
    grid = grid[keep]
    grid[-1] = 1.0
    return grid


def _refine_grid(pw: Pointwise, grid: torch.Tensor, scales: torch.Tensor, tol_us: float = 0.02,
                 rounds: int = 5, max_points: int = 161) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets at the grid, with midpoints inserted where the optimum bends or jumps between two
    points (its targets there differ from linear interpolation by more than `tol_us`), so the
    table follows the pointwise mapping's kinks and branch switches."""
    table = pw.targets_at(grid, scales)
    for _ in range(rounds):
        mid = (grid[1:] + grid[:-1]) / 2
        at_mid = pw.targets_at(mid, scales)
        off = (at_mid - (table[1:] + table[:-1]) / 2).abs().amax(-1)
        room = max_points - grid.numel()
        add = torch.nonzero((off > tol_us) & (grid.diff() > 1e-4)).flatten()
        if add.numel() == 0 or room <= 0:
            break
        add = add[off[add].argsort(descending=True)[:room]]
        grid, order = torch.sort(torch.cat([grid, mid[add]]))
        table = torch.cat([table, at_mid[add]])[order]
    return grid, table


def _polish_table(model: ExpectedTNMSE, strategy: Strategy, steps: int, tied: bool = False) -> Strategy:
    """Adam on a strategy's table (through a sigmoid into the device range) and log β (or, `tied`,
    β = W_hw at u = 1), on the expected error with the real drift compensation; the better of
    before and after."""
    dev = model.device
    span = dev.g_max - dev.g_min
    x0 = ((strategy.conductances - dev.g_min) / span).clamp(1e-4, 1 - 1e-4)
    raw = torch.log(x0 / (1 - x0)).requires_grad_(True)
    log_beta = torch.log(strategy.beta.clone()).requires_grad_(True)
    opt = Adam([raw, log_beta], lr=0.02)
    best = (float(model(strategy)[0]), strategy)
    def beta_of(table):
        return strategy.hardware_weight(table)[:, -1] if tied else torch.exp(log_beta)

    for _ in range(steps):
        opt.zero_grad()
        table = dev.g_min + span * torch.sigmoid(raw)
        loss = model.per_time(strategy.grid, table, strategy.significance, beta_of(table), grad=True).mean()
        loss.backward()
        opt.step()
    with torch.no_grad():
        table = dev.g_min + span * torch.sigmoid(raw)
        after = Strategy(strategy.grid, table, strategy.significance, beta_of(table), dev.g_min, dev.g_max,
                         list(strategy.names))
    score = float(model(after)[0])
    return after if score < best[0] else best[1]
