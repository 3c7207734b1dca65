"""Every claim check can fail: crafted inputs that must give ``fails`` (or a failing check)."""
import jax
import numpy as np
import pytest

from dlnotes.experiments import base, init_variance, momentum, ridge, sgd_noise
from dlnotes.hparams import with_changes


def test_verdict_rules():
    assert base.claim("C0", "s", 1.0, "t", True).verdict == "reproduced"
    assert base.claim("C0", "s", 1.0, "t", False).verdict == "fails"
    assert base.claim("C0", "s", 1.0, "t", True, notes_hold=False).verdict == "differs"
    assert base.claim("C0", "s", 1.0, "t", False, notes_hold=False).verdict == "fails"
    assert base.claim("C0", "s", 1.0, "t", True, notes_hold=True).verdict == "reproduced"
    assert not base.claim("C0", "s", 1.0, "t", False).passed


def test_c13_fails_without_regularization(tmp_path):
    cfg = base.load_config("ridge", "fast")
    with jax.enable_x64(True):
        good = ridge._c13(cfg, str(tmp_path))
        bad = ridge._c13(with_changes(cfg, **{"c13.lam": 1e-16}), str(tmp_path))  # "ridge" = OLS
    assert good.verdict == "reproduced"
    assert bad.verdict == "fails", bad.measured


def test_c12_fails_when_t10_is_not_measured(tmp_path):
    cfg = with_changes(base.load_config("ridge", "fast"), **{"c12.log_every": 20, "c12.num_steps": 2000})
    with jax.enable_x64(True):
        c = ridge._c12(cfg, str(tmp_path))
    assert c.verdict == "fails" and "t = 20," in c.measured


def test_c3_fails_when_a_small_step_has_too_few_steps(tmp_path):
    cfg = with_changes(base.load_config("sgd_noise", "fast"), **{"c3.num_steps": 2000, "c3.num_seeds": 2})
    c = sgd_noise._c3(cfg, str(tmp_path))
    assert c.verdict == "fails", c.measured   # the smallest η's decayed run is < 10× below its plateau


def test_c16_c17_fail_when_the_tolerance_is_never_reached():
    inf = float("inf")
    assert momentum.c16_check(0.0, 500.0, 50.0)[0]
    assert not momentum.c16_check(0.0, inf, 50.0)[0]          # GD never reached it: no speed-up to claim
    assert not momentum.c16_check(0.0, inf, inf)[0]
    assert not momentum.c16_check(1e-6, 500.0, 50.0)[0]
    assert momentum.c17_check(40.0, 60.0, 60.0, 50.0, 0.0)
    assert not momentum.c17_check(40.0, inf, 60.0, 50.0, 0.0)  # heavy ball's default never reached it
    assert not momentum.c17_check(40.0, 60.0, 55.0, 50.0, 0.0)  # ratio 1.1 < 1.15


def test_c15_finding_compares_with_the_others_only():
    finals = {"xavier_fan_in_plus_one": np.array([1.2, 1.3, 1.1]), "zeros": np.array([0.3, 50.0, 60.0]),
              "constant_0.01": np.array([0.4, 0.5, 40.0]), "normal_0.01": np.array([0.45, 0.5, 0.6])}
    band, small, ok, med, stalled, best_other = init_variance.c15_check(finals)
    assert not small and best_other == pytest.approx(0.5)
    assert not ok          # fan-in's median 1.2 > 2 × 0.5: the finding fails
    finals["xavier_fan_in_plus_one"] = np.array([0.5, 0.6, 0.7])
    assert init_variance.c15_check(finals)[2]
    finals["xavier_fan_in_plus_one"] = np.array([0.5, 0.6, 30.0])   # a stalled seed
    assert not init_variance.c15_check(finals)[2]


def test_report_shows_three_verdicts(tmp_path):
    from dlnotes.report import summary, write_report
    claims = [base.claim("C2", "b", 1.0, "t", True, notes_hold=False),
              base.claim("C1", "a", 1.0, "t", True), base.claim("C3", "c", 1.0, "t", False)]
    assert summary(claims) == "1 reproduced, 1 differs, 1 fails"
    text = open(write_report(str(tmp_path), claims, profile="fast", timings={"x": 1.0})).read()
    assert "3 claims: 1 reproduced, 1 differs, 1 fails" in text
    assert all(c in text for ids in base.PENDING.values() for c in ids)
    rows = [line for line in text.splitlines() if line.startswith("| C")]
    assert [r.split(" | ")[0] for r in rows] == ["| C1", "| C2", "| C3"]
    assert "| reproduced |" in rows[0] and "| *differs* |" in rows[1] and "| **FAILS** |" in rows[2]


def test_c7_reproduced_differs_and_fails_on_crafted_histories():
    from dlnotes.experiments.relu_elbows import c7_check

    widths = [4, 8, 16, 32]
    floor = np.array([1e-1, 1e-2, 1e-3, 1e-4])                          # what each width reaches
    hist = np.broadcast_to(floor[None, :, None], (5, 4, 11)).copy()     # 5 seeds, 11 evaluations
    hist *= 1 + 0.01 * np.arange(5)[:, None, None]
    assert c7_check(widths, hist, 1)[3:] == (True, True)                # falls with width: reproduced
    spiky = hist.copy()
    spiky[:3, 3, -1] *= 50                                              # 3 of 5 widest runs end on a spike
    rho, rho_late, ratios, holds, ok = c7_check(widths, spiky, 1)
    assert rho > -0.9 and rho_late == -1.0 and ratios == {32: pytest.approx(50.0)} and (holds, ok) == (False, True)
    worse = spiky.copy()
    worse[:, 3, :] = 5e-2                                               # the widest really is worse: no spike
    assert c7_check(widths, worse, 1)[3:] == (False, False)
    small = hist.copy()
    small[:, 3, :] = 8e-4                                               # just below width 16's 1e-3 ...
    small[:3, 3, -1] *= 2                                               # ... ends above it, but only 2× its minimum
    assert c7_check(widths, small, 1)[3:] == (False, False)


def test_c25_reproduced_differs_and_fails_on_crafted_histories():
    from dlnotes.experiments.normalization import c25_check

    ones = np.ones((3, 11))                                   # 3 seeds, 11 evaluations (epoch ends)
    bn2, bn32, gn2, gn32 = 0.86 * ones, 0.977 * ones, 0.976 * ones, 0.976 * ones
    gaps, holds, ok = c25_check(bn2, bn32, gn2, gn32)
    assert (holds, ok) == (True, True) and gaps["bn"] == pytest.approx([11.7] * 3)
    dipped = gn2.copy()
    dipped[1, -1] = 0.92                                      # one seed ends in a dip, 98.5 → 92 style
    gaps, holds, ok = c25_check(bn2, bn32, dipped, gn32)
    assert gaps["gn"].mean() > 1 and (holds, ok) == (False, True)
    assert gaps["gn_small_dip"][1] == pytest.approx(5.6) and gaps["gn_late"] == pytest.approx([0.0] * 3)
    worse = gn2.copy()
    worse[1, -3:] = 0.92                                      # that seed really is worse at batch 2: no dip
    assert c25_check(bn2, bn32, worse, gn32)[1:] == (False, False)
    shallow = gn2.copy()
    shallow[:, -1] = 0.961                                    # every seed 1.5 points down: a gap, not a dip
    assert c25_check(bn2, bn32, shallow, gn32)[1:] == (False, False)
    assert c25_check(0.95 * ones, bn32, gn2, gn32)[1:] == (False, False)   # BN's gap missing: no explanation


def test_c41_reproduced_differs_and_fails_on_crafted_scores():
    from dlnotes.experiments.seq2seq_attention import c41_check

    lengths = np.arange(5, 31)
    att = np.full((3, 26), 0.97)
    none = np.zeros((3, 3, 26))                                     # seeds, evaluations (0, 300, 600), lengths
    none[:, :, :5] = np.linspace(0.3, 0.1, 5)                       # length 5–9 fall with length ...
    none[:, 1, 0], none[:, 2, 0] = 0.6, [0.90, 0.91, 0.92]          # ... and length 5 climbs to ≥ 0.85
    v = c41_check(att, none, lengths)
    assert (v["notes_hold"], v["passed"]) == (True, True) and v["short_min"] == pytest.approx(0.90)
    short = none.copy()
    short[0, 2, 0] = 0.845                                          # one seed just short, still climbing
    v = c41_check(att, short, lengths)
    assert (v["notes_hold"], v["passed"]) == (False, True) and v["rise_behind"] == pytest.approx(0.245)
    flat = short.copy()
    flat[0, 1, 0] = 0.84                                            # short and no longer climbing: fails
    assert c41_check(att, flat, lengths)["passed"] is False
    low = short.copy()
    low[:, 2, 0] = 0.70                                             # climbing, but the seed mean is short too
    assert c41_check(att, low, lengths)["passed"] is False
    assert c41_check(att, short[:, -1:], lengths)["passed"] is False    # no curve: the finding is unmeasured
    spread = att.copy()
    spread[1, -1] = 0.94                                            # one seed below 0.95 at length 30, mean 0.96
    v = c41_check(spread, none, lengths)
    assert (v["notes_hold"], v["passed"]) == (False, True) and v["att_mean_min"] == pytest.approx(0.96)
    worse_att = att.copy()
    worse_att[:, -1] = [0.94, 0.95, 0.95]                           # the seed mean below 0.95 at length 30
    assert c41_check(worse_att, none, lengths)["passed"] is False
    early = att.copy()
    early[1, 10] = 0.94                                             # a seed below 0.95 at length 15: not spread late
    assert c41_check(early, none, lengths)["passed"] is False
    no_decline = none.copy()
    no_decline[2, 2, 12] = 0.25                                     # without attention 0.25 at length 17
    assert c41_check(att, no_decline, lengths)["passed"] is False
