"""Measurement CSVs and the device fitter: validation errors, and simulate → fit round trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from weightprog.devices import get_device, load_tabulated, preset_names
from weightprog.devices.fit import fit_device, folded_moments, unfold_normal, write_device
from weightprog.devices.measurements import (
    parse_measurements,
    read_measurements,
    simulate_measurements,
    write_measurements,
)
from weightprog.errors import WeightprogError
from weightprog.timeunits import DEFAULT_TIMES_S

PER_TARGET = 200  # 11 targets x 200 = 2,200 devices per round trip


# --- reading and validating ----------------------------------------------------------------------
GOOD = "device_id,g_target,t,g\na,10,1,9.9\na,10,60,9.5\na,10,3600,9.1\n"


def test_parse_good_file_sorts_by_device_and_time():
    m = parse_measurements("device_id,g_target,t,g\nb,5,60,4.8\na,10,1,9.9\nb,5,1,5.1\n")
    assert m.ids == ["b", "a"] and m.n_devices == 2
    assert list(m.t) == [1, 60, 1] and list(m.device) == [0, 0, 1]
    assert list(m.device_targets()) == [5.0, 10.0]


@pytest.mark.parametrize("text, needle", [
    ("", "empty"),
    ("\n\n", "empty"),
    ("device_id,g_target,t\na,1,1\n", "missing column 'g'"),
    ("device_id,g_target,t,g,g\na,1,1,1,1\n", "row 1 (header): column 'g' appears twice"),
    (GOOD + "device_id,g_target,t,g\n", "row 5: the header is repeated"),
    ("device_id,g_target,t,g\n", "no data rows"),
    ("device_id,g_target,t,g\na,10,1,abc\n", "row 2, column 'g': 'abc' is not a number"),
    ("device_id,g_target,t,g\na,ten,1,1\n", "row 2, column 'g_target'"),
    ("device_id,g_target,t,g\na,10,1,-0.5\n", "row 2, column 'g': -0.5 is negative"),
    ("device_id,g_target,t,g\na,10,1,nan\n", "row 2, column 'g': 'nan' is not finite"),
    ("device_id,g_target,t,g\na,10,1,inf\n", "row 2, column 'g': 'inf' is not finite"),
    ("device_id,g_target,t,g\na,10,0,1\n", "row 2, column 't': 0.0 is not allowed"),
    ("device_id,g_target,t,g\na,10,-3,1\n", "row 2, column 't'"),
    ("device_id,g_target,t,g\na,10,1,1\na,10,1\n", "row 3: expected 4 fields"),
    ("device_id,g_target,t,g\na,10,1,1\na,11,2,1\n", "row 3, column 'g_target': device 'a'"),
    ("device_id,g_target,t,g\na,10,1,1\na,10,1,2\n", "row 3: device 'a' is read twice"),
])
def test_bad_csv_names_row_or_column(text, needle):
    with pytest.raises(WeightprogError, match=None) as info:
        parse_measurements(text, where="x.csv")
    msg = str(info.value)
    assert msg.startswith("x.csv: ") and needle in msg, msg
    assert "\n" not in msg


def test_read_measurements_names_the_file(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("device_id,g_target,t\n")
    with pytest.raises(WeightprogError, match=r"m\.csv: row 1 \(header\): missing column 'g'"):
        read_measurements(path)
    with pytest.raises(WeightprogError, match="cannot read"):
        read_measurements(tmp_path / "absent.csv")


def test_simulate_write_read_round_trip(tmp_path):
    dev = get_device("pcm")
    m = simulate_measurements(dev, [0, 10, 25], 7, (1, 60, 3600), seed=3)
    assert m.n_devices == 21 and len(m) == 63
    path = tmp_path / "m.csv"
    write_measurements(path, m)
    back = read_measurements(path)
    assert back.ids == m.ids
    np.testing.assert_array_equal(back.g, m.g)
    np.testing.assert_array_equal(back.t, m.t)
    # same seed, same table; the law's first read is the programmed value drifted and read
    again = simulate_measurements(dev, [0, 10, 25], 7, (1, 60, 3600), seed=3)
    np.testing.assert_array_equal(again.g, m.g)


def test_simulate_rejects_bad_input():
    dev = get_device("pcm")
    with pytest.raises(WeightprogError, match="outside the device range"):
        simulate_measurements(dev, [30.0], 5, (1, 60))
    with pytest.raises(WeightprogError, match="times"):
        simulate_measurements(dev, [10.0], 5, (60, 1))


# --- refusing data that cannot support a fit -----------------------------------------------------
def test_fit_refuses_one_read_per_device():
    m = simulate_measurements(get_device("pcm"), [5, 10], 50, (1.0,), seed=0)
    with pytest.raises(WeightprogError, match="only one read"):
        fit_device(m)


def test_fit_refuses_two_reads_and_names_device():
    m = simulate_measurements(get_device("pcm"), [5, 10], 50, (1.0, 60.0), seed=0)
    with pytest.raises(WeightprogError, match=r"device 'd00' has 2 read\(s\).*at least 3"):
        fit_device(m)


def test_fit_refuses_too_few_devices():
    m = simulate_measurements(get_device("pcm"), [5, 10], 10, (1.0, 60.0, 3600.0), seed=0)
    with pytest.raises(WeightprogError, match="20 devices in all.*at least 30 devices per conductance bin"):
        fit_device(m)


def test_small_target_groups_are_merged_into_bins():
    m = simulate_measurements(get_device("pcm"), np.linspace(5, 25, 9), 12, (1, 60, 3600, 86400), seed=0)
    r = fit_device(m, min_devices=30)
    assert (r.bins.n_devices >= 30).all() and r.bins.n_devices.sum() == 108
    assert np.all(np.diff(r.bins.g) > 0)


def test_folded_normal_inversion():
    for mu, sd in [(0.05, 0.01), (0.01, 0.02), (0.0, 0.03)]:
        fm, fs = folded_moments(mu, sd)
        mu2, sd2 = unfold_normal(float(fm), float(fs))
        assert mu2 == pytest.approx(mu, abs=1e-6) and sd2 == pytest.approx(sd, abs=1e-6)


# --- round trips ---------------------------------------------------------------------------------
def _round_trip(name: str, seed: int = 11):
    dev = get_device(name)
    targets = np.linspace(dev.g_min, dev.g_max, 11)
    m = simulate_measurements(dev, targets, PER_TARGET, DEFAULT_TIMES_S, seed=seed)
    assert m.n_devices >= 2000
    return dev, fit_device(m, t0=dev.t0, t_read=dev.t_read, g_min=dev.g_min, g_max=dev.g_max)


def _truth(dev, g):
    g = torch.tensor(g, dtype=torch.float64)
    return (dev.programming_std(g).numpy(), dev.drift_mean(g).numpy(), dev.drift_std(g).numpy(),
            dev.read_q(g).numpy())


@pytest.mark.parametrize("name", ["pcm"] + preset_names())
def test_round_trip_recovers_the_source_curves(name):
    """Clean bins: within 4 standard errors (from each bin's sample size) plus a 4 % allowance for
    the method's small-noise approximations. Censored bins (reads at 0 µS) have no closed-form
    error; they must be within 35 % (σ_p, Q) and 40 % (|ν| mean)."""
    dev, r = _round_trip(name)
    b = r.bins
    sp, nm, ns, q = _truth(dev, b.g)
    fm, fs = folded_moments(b.nu_mean, b.nu_std)
    tm, ts = folded_moments(nm, ns)
    checked = 0
    for k in range(len(b.g)):
        where = f"{name} bin {b.g[k]:.3g} µS"
        if b.clean[k]:
            assert abs(b.sigma_p[k] - sp[k]) <= 4 * b.sigma_p_se[k] + 0.04 * sp[k], where
            assert abs(b.q[k] - q[k]) <= 4 * b.q_se[k] + 0.04 * q[k], where
            assert abs(fm[k] - tm[k]) <= 4 * b.nu_mean_se[k] + 0.04 * tm[k], where
            assert abs(fs[k] - ts[k]) <= 4 * b.nu_std_se[k] + 0.04 * ts[k] + 1e-4, where
            checked += 1
        else:
            assert b.sigma_p[k] == pytest.approx(sp[k], rel=0.35), where
            assert b.q[k] == pytest.approx(q[k], rel=0.35), where
            assert fm[k] == pytest.approx(tm[k], rel=0.40), where
    assert checked >= 9
    # the fitted device is a valid file that loads back to the same curves
    data = r.device.to_dict()
    assert data["kind"] == "tabulated" and data["programming"]["g"] == [float(f"{x:.6g}") for x in b.g]


def test_fitted_device_error_over_time_matches_source():
    """Whole-device check: rms error of reads vs target, per time, within 5 % of the source's."""
    dev, r = _round_trip("pcm")
    fitted = r.device
    targets = np.linspace(2.5, 25, 10)
    rms = []
    for d in (dev, fitted):
        sim = simulate_measurements(d, targets, 2000, DEFAULT_TIMES_S, seed=5)
        err = (sim.g - sim.g_target).reshape(-1, len(DEFAULT_TIMES_S))
        rms.append(np.sqrt((err ** 2).mean(0)))
    np.testing.assert_allclose(rms[1], rms[0], rtol=0.05)


def test_write_device_yaml_loads_back(tmp_path):
    _, r = _round_trip("ecram")
    path = tmp_path / "ecram-fit.yaml"
    write_device(path, r.device)
    back = load_tabulated(path)
    assert back.tables == r.device.tables
    assert "fitted by weightprog" in yaml.safe_load(path.read_text())["source"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


@pytest.mark.parametrize("name", preset_names())
def test_presets_are_documented_and_valid(name):
    from weightprog.devices import PRESET_DIR
    data = yaml.safe_load((PRESET_DIR / f"{name}.yaml").read_text())
    assert len(data["source"]) > 50 and len(data["description"]) > 50
    assert "figures" in data["source"]
    dev = get_device(name)
    assert dev.kind == "tabulated" and dev.name == name


def test_fitted_device_optimised_tnmse_within_5_percent_of_source():
    """Issue 6: optimise on the fitted pcm and on pcm itself (same sample, seeds and settings):
    the optimised TNMSE (fresh seeds) of the fitted device is within 5 % of the source's.
    Targets are dense at low G, where most weights live and PCM's curves bend most: with 11
    evenly spaced targets the table's linear interpolation between 0 and 2.5 µS alone costs 2–5 %."""
    from weightprog.cell import Cell
    from weightprog.sample import default_sample, load_distribution
    from weightprog.search.run import OptimizeSettings, optimize

    dev = get_device("pcm")
    targets = np.array([0, 0.5, 1, 2, 3, 5, 8, 12, 16, 20, 25], dtype=float)
    m = simulate_measurements(dev, targets, 200, DEFAULT_TIMES_S, seed=11)
    fitted_device = fit_device(m, t0=dev.t0, t_read=dev.t_read, g_min=dev.g_min, g_max=dev.g_max).device

    settings = OptimizeSettings(significance=Cell((1.0, 2.0)), max_generations=3, popsize=3,
                                rescore_blocks=2, compile=False, polish=False)
    sample, values = default_sample(), load_distribution()
    source = optimize(sample, values, dev, settings).scores.optimised.mean
    fitted = optimize(sample, values, fitted_device, settings).scores.optimised.mean
    assert fitted == pytest.approx(source, rel=0.05)
