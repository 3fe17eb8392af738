"""Fit a tabulated device (docs/MODEL.md §3.4) to measured reads: σ_p(G), ν mean/std(G), Q(G).

The laws are those of devices/base.py. Per device, ln g is linear in L = ln((t + t0)/t0):

    ln g_k = ln g_prog − ν·L_k + ln(1 + Q·c_k·z_k),   c_k² = ln((t_k + t0 + t_read)/(2·t_read))

so a weighted least-squares line through each device's reads (weights 1/c_k², since the noise
grows with c_k) gives its drift exponent ν̂ (minus the slope) and residuals whose spread is Q.
Per conductance bin (devices grouped by target):

* Q from the pooled weighted residual variance, with a second-order correction for ln(1+x) ≠ x;
  ln g is also shifted by Q²c²/2 (the mean of ln(1+x)) and the lines refitted once, so the
  growing read noise does not masquerade as drift. The law reads noise at the programmed
  conductance, so a bin's pooled Q is the rms of Q(g_prog) over its devices, tabulated at the
  bin's target. Where Q is steep across the programming spread (PCM below ~2 µS) that reads above
  Q at the target: +13 to +22 % at 0.75-1.5 µS for PCM, 600 devices per target. Measure with
  more, finer targets there.
* ν mean/std from the devices' ν̂, minus the regression's own noise variance, then un-folded
  (the law draws ν = |μ + σ·z|, so the observed ν are folded normal).
* σ_p from the first read, corrected back to t = 0 with each device's ν̂, as the rms error about
  the target, minus the read-noise variance at that read. Devices programmed to (or read at) 0 µS
  are censored; the rms uses a censored-normal maximum likelihood then.

Bins where reads hit 0 µS cannot be regressed in log space without bias: σ_p, Q and the ν mean
come from a censored maximum-likelihood fit of the bin's reads (the programmed conductance
integrated out numerically), and ν std from the nearest clean bin; the result's notes say so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from scipy import optimize, special, stats

from .. import validate
from ..errors import WeightprogError
from ..fileio import atomic_write_text
from .measurements import Measurements
from .tabulated import TabulatedDevice, tabulated_from_dict

MIN_READS = 3
"""A line through the reads leaves residuals (for Q) only from the third read on."""
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
CLEAN_ZERO_FRACTION = 0.02
"""A bin with more devices than this reading 0 µS somewhere is censored for drift and Q."""


@dataclass
class BinFit:
    """Per-bin estimates (arrays over bins) with standard errors from the bin's sample size."""

    g: np.ndarray
    n_devices: np.ndarray
    sigma_p: np.ndarray
    sigma_p_se: np.ndarray
    nu_mean: np.ndarray
    nu_mean_se: np.ndarray
    nu_std: np.ndarray
    nu_std_se: np.ndarray
    q: np.ndarray
    q_se: np.ndarray
    clean: np.ndarray
    """False where drift and Q were copied from the nearest clean bin."""
    bias: np.ndarray
    """Mean first-read error about the target (µS, after drift correction): not in the model."""


@dataclass
class FitResult:
    device: TabulatedDevice
    bins: BinFit
    bin_of_device: np.ndarray
    nu_hat: np.ndarray
    """Each device's fitted drift exponent (NaN where a read was 0 µS)."""
    first_error: np.ndarray
    """Each device's first read, corrected to t = 0, minus its target (µS)."""
    measurements: Measurements
    notes: list[str] = field(default_factory=list)


# --- bins ----------------------------------------------------------------------------------------
def choose_bins(targets: np.ndarray, min_devices: int, max_bins: int, where: str) -> np.ndarray:
    """Bin index of each device: one bin per distinct target when there are few, else quantiles;
    then neighbours are merged until every bin has `min_devices`."""
    n = len(targets)
    if n < min_devices:
        raise WeightprogError(f"{where}: {n} devices in all; a fit needs at least {min_devices} "
                              f"devices per conductance bin (lower --min-devices to risk it)")
    distinct = np.unique(targets)
    if len(distinct) <= max_bins:
        edges = distinct
    else:
        k = max(1, min(max_bins, n // min_devices))
        edges = np.unique(np.quantile(targets, np.linspace(0, 1, k + 1))[:-1])
    group = np.searchsorted(edges, targets, side="right") - 1
    counts = np.bincount(group, minlength=len(edges))
    # greedy merge left to right; a short last group joins the one before it
    label, current, fill = np.empty(len(edges), int), 0, 0
    for j, c in enumerate(counts):
        if fill >= min_devices:
            current, fill = current + 1, 0
        label[j] = current
        fill += c
    if fill < min_devices and current > 0:
        label[label == current] = current - 1
    return label[group]


# --- small statistics helpers --------------------------------------------------------------------
def unfold_normal(mean: float, std: float) -> tuple[float, float]:
    """(μ, σ) of a normal whose absolute value has this mean and std (folded-normal inversion)."""
    second = mean * mean + std * std
    if second <= 0 or mean <= 0:
        return 0.0, math.sqrt(max(second, 0.0))
    ratio = mean / math.sqrt(second)

    def folded_ratio(theta: float) -> float:  # E|X| / sqrt(E X²) for X ~ N(θ, 1)
        m = math.sqrt(2 / math.pi) * math.exp(-theta * theta / 2) + theta * (1 - 2 * special.ndtr(-theta))
        return m / math.sqrt(1 + theta * theta)

    if ratio <= folded_ratio(0.0):
        return 0.0, math.sqrt(second)
    if ratio >= folded_ratio(8.0):  # essentially unfolded
        return mean, std
    theta = optimize.brentq(lambda th: folded_ratio(th) - ratio, 0.0, 8.0)
    sigma = math.sqrt(second / (1 + theta * theta))
    return theta * sigma, sigma


def folded_moments(mu, sigma):
    """Mean and std of |μ + σ·z| (what the device law actually draws as ν); array-friendly."""
    mu, sigma = np.asarray(mu, float), np.asarray(sigma, float)
    safe = np.maximum(sigma, 1e-300)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        mean = (sigma * math.sqrt(2 / math.pi) * np.exp(-mu ** 2 / (2 * safe ** 2))
                + mu * (1 - 2 * special.ndtr(-mu / safe)))
    mean = np.where(sigma > 0, mean, np.abs(mu))
    return mean, np.sqrt(np.maximum(mu ** 2 + sigma ** 2 - mean ** 2, 0.0))


def censored_rms(err: np.ndarray, target: np.ndarray, zero: np.ndarray) -> float:
    """rms of N(0, σ²) errors about the targets when reads at 0 µS only say err <= −target."""
    if not zero.any():
        return float(np.sqrt(np.mean(err ** 2)))
    pos = err[~zero]
    t0 = target[zero]

    def nll(log_s: float) -> float:
        s = math.exp(log_s)
        return -(stats.norm.logcdf(-t0 / s).sum() - len(pos) * log_s - (pos ** 2).sum() / (2 * s * s))

    guess = math.log(max(float(np.sqrt(np.mean(err ** 2))), 1e-6))
    res = optimize.minimize_scalar(nll, bounds=(guess - 5, guess + 5), method="bounded")
    return float(math.exp(res.x))


def censored_bin_fit(g: np.ndarray, zero: np.ndarray, target: np.ndarray, L: np.ndarray,
                     c: np.ndarray, sigma0: float, q0: float, nu0: float) -> tuple[float, float, float]:
    """Maximum-likelihood (σ_p, Q, ν mean) of one bin whose reads hit 0 µS.

    g, zero, L (= ln((t + t0)/t0)), c: (devices, reads) with NaN/False padding; target: (devices,).
    ν is taken as one value for the bin (its spread is not identifiable under this much noise).
    The programmed conductance is integrated out on a grid in ln g_prog (so reads of a few nS are
    resolved as well as reads of a few µS) plus the point mass at 0 µS, which reads 0 forever.
    """
    valid = ~np.isnan(g)
    all_zero = (zero | ~valid).all(1)
    gv = np.where(valid, g, 0.0)

    def nll(params: np.ndarray) -> float:
        sigma, q, nu = np.exp(params)
        drift = np.exp(-nu * L)
        top = float(target.max()) + 6 * sigma
        u = np.linspace(math.log(top * 1e-4), math.log(top), 120)
        gp = np.exp(u)                                                  # (J,)
        logw = (-0.5 * ((gp[None, :] - target[:, None]) / sigma) ** 2 - math.log(sigma) - _LOG_SQRT_2PI
                + u[None, :] + math.log(u[1] - u[0]))                   # (D, J) density · g · du
        mean = gp[None, :, None] * drift[:, None, :]                    # (D, J, K)
        scale = mean * q * c[:, None, :]
        at_zero = special.log_ndtr(-1.0 / (q * c))[:, None, :]
        dens = -0.5 * ((gv[:, None, :] - mean) / scale) ** 2 - np.log(scale) - _LOG_SQRT_2PI
        logp = np.where(zero[:, None, :], at_zero, dens)
        logp = np.where(valid[:, None, :], logp, 0.0).sum(-1) + logw   # (D, J)
        log_pos = special.logsumexp(logp, axis=1)
        log_zero = np.where(all_zero, special.log_ndtr(-target / sigma), -np.inf)
        return -float(np.logaddexp(log_pos, log_zero).sum())

    start = np.log([max(sigma0, 1e-3), max(q0, 1e-3), max(nu0, 1e-3)])
    res = optimize.minimize(nll, start, method="Nelder-Mead",
                            options={"xatol": 1e-3, "fatol": 1e-3, "maxiter": 600})
    sigma, q, nu = np.exp(res.x)
    return float(sigma), float(q), float(nu)


def _padded(m: Measurements, sel_rows: np.ndarray, values: np.ndarray, fill) -> np.ndarray:
    """Per-device rows of `values` as a (devices, max reads) array (rows are sorted by device)."""
    dev = m.device[sel_rows]
    _, local = np.unique(dev, return_inverse=True)
    counts = np.bincount(local)
    pos = np.arange(len(dev)) - np.r_[0, np.cumsum(counts)[:-1]][local]
    out = np.full((len(counts), counts.max()), fill, dtype=np.asarray(values).dtype)
    out[local, pos] = values[sel_rows]
    return out


def _sums(device: np.ndarray, n: int, *values: np.ndarray) -> list[np.ndarray]:
    return [np.bincount(device, weights=v, minlength=n) for v in values]


# --- the fit, step by step -----------------------------------------------------------------------
@dataclass
class _Reads:
    """The measurements as the fit's steps use them: per read (rows sorted by device then t) the
    log time L, the read-noise growth c², the regression weight 1/c² and whether it read 0 µS;
    per device its bin, its read count and whether it is usable (never read 0 µS)."""

    m: Measurements
    bin_of: np.ndarray
    n_bins: int
    reads: np.ndarray
    L: np.ndarray
    c2: np.ndarray
    w: np.ndarray
    zero_read: np.ndarray
    dev_zero: np.ndarray
    usable: np.ndarray

    @classmethod
    def of(cls, m: Measurements, bin_of: np.ndarray, reads: np.ndarray, t0: float, t_read: float) -> _Reads:
        c2 = np.log((m.t + t0 + t_read) / (2 * t_read))
        zero_read = m.g <= 0
        dev_zero = np.bincount(m.device, weights=zero_read.astype(float), minlength=m.n_devices) > 0
        return cls(m, bin_of, int(bin_of.max()) + 1, reads, np.log((m.t + t0) / t0), c2, 1.0 / c2, zero_read,
                   dev_zero, ~dev_zero)

    def regress(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each device's weighted line of y against L: ν̂ (minus the slope), Σw(L − L̄)², residual Σw·r²."""
        m, w, L, n_dev = self.m, self.w, self.L, self.m.n_devices
        sw, swl, swy, swll, swly = _sums(m.device, n_dev, w, w * L, w * y, w * L * L, w * L * y)
        lbar, ybar = swl / sw, swy / sw
        sxx = swll - sw * lbar ** 2
        slope = (swly - sw * lbar * ybar) / sxx
        resid = y - (ybar - slope * lbar)[m.device] - slope[m.device] * L
        rss = np.bincount(m.device, weights=w * resid ** 2, minlength=n_dev)
        return -slope, sxx, rss

    def bin_q(self, rss: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Log-space residual variance per unit weight (v) and the linear-space Q of each bin."""
        n_bins, bin_of, row_ok = self.n_bins, self.bin_of, self.usable[self.m.device]
        v, q, dof = np.full(n_bins, np.nan), np.full(n_bins, np.nan), np.zeros(n_bins)
        for b in range(n_bins):
            sel = self.usable & (bin_of == b)
            if not sel.any():
                continue
            dof[b] = (self.reads[sel] - 2).sum()
            v[b] = rss[sel].sum() / dof[b]
            cbar = np.mean(self.c2[row_ok & (bin_of[self.m.device] == b)])
            # Var ln(1+x) ≈ s² + 2.5 s⁴ for x ~ N(0, s²): solve Q² + 2.5·Q⁴·c̄² = v
            q[b] = math.sqrt((math.sqrt(1 + 10 * cbar * v[b]) - 1) / (5 * cbar))
        return v, q, dof

    def drift_and_q(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """ν̂ (NaN for unusable devices), Σw(L − L̄)², and per bin v, Q and the residuals' dof."""
        y0 = np.log(np.where(self.zero_read, 1.0, self.m.g))
        _, _, rss = self.regress(y0)
        _, q_first, _ = self.bin_q(rss)
        # second pass: remove the mean of ln(1 + Q c z) ≈ −Q²c²/2, which grows with t like drift does
        shift = 0.5 * np.nan_to_num(q_first)[self.bin_of[self.m.device]] ** 2 * self.c2
        nu_hat, sxx, rss = self.regress(y0 + shift)
        v, q, dof = self.bin_q(rss)
        return np.where(self.usable, nu_hat, np.nan), sxx, v, q, dof


def _checked_settings(where: str, t0: float, t_read: float, g_min: float, g_max: float | None,
                      min_devices: int, max_bins: int) -> tuple[float, float, float, float | None, int, int]:
    try:
        t0 = validate.number(t0, "t0", above=0)
        t_read = validate.number(t_read, "t_read", above=0)
        g_min = validate.number(g_min, "g_min", minimum=0)
        if g_max is not None:
            g_max = validate.number(g_max, "g_max", above=0)
        return t0, t_read, g_min, g_max, validate.integer(min_devices, "min_devices", 1), \
            validate.integer(max_bins, "max_bins", 1)
    except validate.SettingError as exc:
        raise exc.named(f"{where}: fit {exc.field}") from None


def _checked_reads(m: Measurements, where: str) -> np.ndarray:
    """Reads per device, at least MIN_READS each."""
    reads = m.reads_per_device()
    if reads.max() < 2:
        raise WeightprogError(f"{where}: every device has only one read; fitting drift needs at least "
                              f"{MIN_READS} reads of each device at different times")
    if reads.min() < MIN_READS:
        bad = int(np.argmax(reads < MIN_READS))
        raise WeightprogError(f"{where}: device {m.ids[bad]!r} has {reads[bad]} read(s) "
                              f"({int((reads < MIN_READS).sum())} devices have fewer than {MIN_READS}); "
                              f"fitting drift and read noise needs at least {MIN_READS} reads per device")
    return reads


def _drift_of_clean_bins(r: _Reads, nu_hat: np.ndarray, sxx: np.ndarray, v: np.ndarray, q: np.ndarray,
                         dof: np.ndarray, clean: np.ndarray) -> dict[str, np.ndarray]:
    """Per-bin estimates (NaN until set), with ν mean/std and the standard errors of the clean bins."""
    est = {k: np.full(r.n_bins, np.nan) for k in
           ("nu_mean", "nu_mean_se", "nu_std", "nu_std_se", "q_se", "sigma_p", "sigma_p_se", "bias")}
    for b in np.flatnonzero(clean).tolist():
        sel = r.usable & (r.bin_of == b)
        nus = nu_hat[sel]
        k = len(nus)
        noise_var = np.mean(v[b] / sxx[sel])  # the regression's own variance of ν̂
        obs_var = float(np.var(nus, ddof=1)) if k > 1 else 0.0
        mu, sd = unfold_normal(float(nus.mean()), math.sqrt(max(obs_var - noise_var, 0.0)))
        est["nu_mean"][b], est["nu_std"][b] = mu, sd
        est["nu_mean_se"][b] = math.sqrt(obs_var / k)
        # var of a variance estimate is 2·var²/(k−1); propagate to the std
        est["nu_std_se"][b] = math.sqrt(2 / max(k - 1, 1)) * obs_var / max(2 * sd, math.sqrt(obs_var))
        est["q_se"][b] = q[b] / math.sqrt(2 * dof[b])
    return est


def _borrow_for_unclean(est: dict[str, np.ndarray], q: np.ndarray, clean: np.ndarray, g_bin: np.ndarray,
                        zero_frac: np.ndarray) -> list[str]:
    """Unclean bins borrow drift and Q from the nearest clean bin (in place); a note for each."""
    clean_idx = np.flatnonzero(clean)
    notes = []
    for b in np.flatnonzero(~clean).tolist():
        src = clean_idx[np.argmin(np.abs(g_bin[clean_idx] - g_bin[b]))]
        for key in ("nu_mean", "nu_mean_se", "nu_std", "nu_std_se", "q_se"):
            est[key][b] = est[key][src]
        q[b] = q[src]
        notes.append(f"bin at {g_bin[b]:.3g} µS: {zero_frac[b]:.0%} of devices read 0 µS at some time, "
                     f"so σ_p, Q and ν mean come from a censored likelihood fit and "
                     f"ν std is copied from the bin at {g_bin[src]:.3g} µS")
    return notes


def _programming(r: _Reads, est: dict[str, np.ndarray], q: np.ndarray, clean: np.ndarray, targets: np.ndarray,
                 nu_hat: np.ndarray, g_bin: np.ndarray, notes: list[str]) -> np.ndarray:
    """σ_p per bin from the first reads corrected back to t = 0 (unclean bins: σ_p, Q and ν mean by
    censored likelihood), in place in `est` and `q`; each device's first-read error."""
    m, bin_of = r.m, r.bin_of
    first = m.first_rows()
    nu_dev = np.where(r.usable, nu_hat, est["nu_mean"][bin_of])
    y1 = m.g[first] * np.exp(nu_dev * r.L[first])
    err = y1 - targets
    s1 = (q[bin_of] ** 2) * r.c2[first]  # relative read-noise variance at the first read
    for b in range(r.n_bins):
        sel = bin_of == b
        if not clean[b]:
            # reads at 0 µS: fit σ_p, Q and ν mean together by censored likelihood
            rows = sel[m.device]
            rms0 = censored_rms(err[sel], targets[sel], m.g[first][sel] <= 0)
            est["sigma_p"][b], q[b], est["nu_mean"][b] = censored_bin_fit(
                _padded(m, rows, m.g, np.nan), _padded(m, rows, r.zero_read, False), targets[sel],
                _padded(m, rows, r.L, 0.0), _padded(m, rows, np.sqrt(r.c2), 1.0), rms0, q[b],
                est["nu_mean"][b])
            est["sigma_p_se"][b] = est["q_se"][b] = est["nu_mean_se"][b] = np.nan
            est["bias"][b] = float(err[sel].mean())
            continue
        rms = censored_rms(err[sel], targets[sel], m.g[first][sel] <= 0)
        read_var = float(np.mean(y1[sel] ** 2 * s1[sel] / (1 + s1[sel])))
        est["sigma_p"][b] = math.sqrt(max(rms ** 2 - read_var, 0.0))
        est["sigma_p_se"][b] = rms ** 2 / max(est["sigma_p"][b], rms / 10) / math.sqrt(2 * sel.sum())
        est["bias"][b] = float(err[sel].mean())
        if abs(est["bias"][b]) > 3 * rms / math.sqrt(sel.sum()) and abs(est["bias"][b]) > 0.1 * rms:
            notes.append(f"bin at {g_bin[b]:.3g} µS: first reads sit {est['bias'][b]:+.3g} µS from the "
                         f"target on average; the model has no offset, so this is folded into σ_p")
    return err


def _table(values) -> list[float]:
    return [float(f"{x:.6g}") for x in values]


def fit_device(m: Measurements, *, name: str = "fitted", t0: float = 20.0, t_read: float = 2.5e-7,
               g_min: float = 0.0, g_max: float | None = None, min_devices: int = 30,
               max_bins: int = 12) -> FitResult:
    """Fit a TabulatedDevice to validated measurements (see the module docstring for the method)."""
    where = m.source
    t0, t_read, g_min, g_max, min_devices, max_bins = _checked_settings(
        where, t0, t_read, g_min, g_max, min_devices, max_bins)
    reads = _checked_reads(m, where)
    targets = m.device_targets()
    g_max = float(targets.max()) if g_max is None else float(g_max)
    if g_max <= g_min:
        raise WeightprogError(f"{where}: g_max ({g_max}) must exceed g_min ({g_min}); "
                              f"are all targets 0 µS? pass g_max")
    if targets.min() < g_min or targets.max() > g_max:
        raise WeightprogError(f"{where}: targets span [{targets.min():g}, {targets.max():g}] µS, outside "
                              f"[g_min, g_max] = [{g_min:g}, {g_max:g}]")
    r = _Reads.of(m, choose_bins(targets, min_devices, max_bins, where), reads, t0, t_read)
    bin_of, n_bins = r.bin_of, r.n_bins
    nu_hat, sxx, v, q, dof = r.drift_and_q()
    zero_frac = np.array([r.dev_zero[bin_of == b].mean() for b in range(n_bins)])
    clean = (zero_frac <= CLEAN_ZERO_FRACTION) & (np.bincount(bin_of, weights=r.usable, minlength=n_bins) >= 3)
    if not clean.any():
        raise WeightprogError(f"{where}: in every conductance bin more than {CLEAN_ZERO_FRACTION:.0%} of "
                              f"devices read 0 µS at some time; drift and read noise cannot be fitted")
    # the mean of equal targets can round a hair outside the range taken from them (19.9 -> 19.900000000000002)
    g_bin = np.clip([targets[bin_of == b].mean() for b in range(n_bins)], g_min, g_max)
    est = _drift_of_clean_bins(r, nu_hat, sxx, v, q, dof, clean)
    notes = _borrow_for_unclean(est, q, clean, g_bin, zero_frac)
    err = _programming(r, est, q, clean, targets, nu_hat, g_bin, notes)
    if n_bins == 1:
        notes.append("one conductance bin only: the curves are constant in G")
    gs = _table(g_bin)
    data = {
        "kind": "tabulated", "name": name, "g_min": float(g_min), "g_max": float(g_max),
        "t0": float(t0), "t_read": float(t_read),
        "programming": {"g": gs, "std": _table(est["sigma_p"])},
        "drift": {"g": gs, "nu_mean": _table(est["nu_mean"]), "nu_std": _table(est["nu_std"])},
        "read_noise": {"g": gs, "q": _table(q)},
        "source": f"fitted by weightprog from {Path(str(where)).name}: {m.n_devices} devices, {len(m)} reads, "
                  f"{n_bins} bins by target",
        "description": "; ".join(notes) if notes else "all bins fitted directly",
    }
    bins = BinFit(g=g_bin, n_devices=np.bincount(bin_of, minlength=n_bins), sigma_p=est["sigma_p"],
                  sigma_p_se=est["sigma_p_se"], nu_mean=est["nu_mean"], nu_mean_se=est["nu_mean_se"],
                  nu_std=est["nu_std"], nu_std_se=est["nu_std_se"], q=q, q_se=est["q_se"], clean=clean,
                  bias=est["bias"])
    return FitResult(device=tabulated_from_dict(data, where=f"{where} (fitted)"), bins=bins, bin_of_device=bin_of,
                     nu_hat=nu_hat, first_error=err, measurements=m, notes=notes)


def device_yaml(device: TabulatedDevice) -> str:
    """The device file text (docs/MODEL.md §3.4, docs/DEVICES.md), keys in schema order."""
    return yaml.safe_dump(device.to_dict(), sort_keys=False, allow_unicode=True, width=100,
                          default_flow_style=None)


def write_device(path: str | Path, device: TabulatedDevice) -> None:
    """Write a device file atomically (YAML, or JSON for a .json path)."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        import json
        atomic_write_text(path, json.dumps(device.to_dict(), indent=1, allow_nan=False))
    else:
        atomic_write_text(path, device_yaml(device))
