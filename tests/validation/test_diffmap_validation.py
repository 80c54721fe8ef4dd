"""Diffusion-map sampler at the paper's sizes (moved from tests/test_diffmap.py).

The reduced versions run in the default suite; docs/diffmap.md collects the measured numbers
(printed with ``-s``).
"""

import numpy as np
import pytest

from test_diffmap import _arc_stats, _semisphere_ot
from xlangevin.samplers import DiffusionMap
from xlangevin.systems import manifolds

pytestmark = pytest.mark.slow


def test_manifold_arc_variable_bandwidth():
    """beta = -1/5 against beta = 0 on the arc example, paired (same training set and chain
    seed), over 4 training sets (M = 2000, eps = 0.009; 300 chains x 400 steps, every 4th
    state after 40). Full table, 8 seeds: ``benchmarks/bench_diffmap.py --arc-beta`` and
    docs/diffmap.md.

    Measured (8 seeds, paired difference mean +- standard error, per-seed range):
    * data-aware noise (the best sampler): beta = -1/5 does NOT move the angular tails:
      d tail(2 sd) -0.0001 +- 0.0003, d tail(2.5 sd) -0.0003 +- 0.0002 (the paper's claimed
      improvement is not reproduced); beta = -1/2 raises the 2 sd tail and the std towards
      the truth (+0.0044 +- 0.0004, every seed >= +0.0028; std +0.011 +- 0.001, every seed
      >= +0.0055) but empties the far tail beyond 3 sd (-0.0008 +- 0.0002, every seed < 0);
    * constant noise, noisy output (Eq. 18's x'): beta = 0 overshoots (t2 0.048, std 0.606
      for 0.0455 / 0.6) and beta = -1/5 moves it towards the truth (d t2 -0.0040 +- 0.0004,
      d t2.5 -0.0013 +- 0.0002, every seed negative).
    Tolerances: 4-seed standard errors are ~1.4x the 8-seed ones (~0.0005 on the tails);
    the "no change" bounds are ~3 standard errors, the "change" bounds half the measured mean
    shift (which every single seed exceeds)."""
    ref = manifolds.noisy_arc(100_000, seed=1)
    cases = [("data-aware", 0.0), ("data-aware", -0.2), ("data-aware", -0.5),
             ("constant", 0.0), ("constant", -0.2)]
    stats = {c: [] for c in cases}
    for seed in range(4):
        X = manifolds.noisy_arc(2000, seed=seed)
        for noise, beta in cases:
            model = DiffusionMap(eps=0.009, beta=beta, standardize=False, seed=seed).fit(X)
            s = model.with_options(scheme="split-step", noise=noise, output="noisy")
            Y = s.generate(400, n_members=300, save_every=4, burn_in=40, seed=1000 + seed,
                           as_array=True).reshape(-1, 2)
            stats[noise, beta].append(_arc_stats(Y, ref))
    mean = {c: {k: float(np.mean([st[k] for st in v])) for k in v[0]} for c, v in stats.items()}
    for c, st in mean.items():
        print(c, {k: round(v, 4) for k, v in st.items()})
    print("truth: tails 0.0455 / 0.0124 / 0.0027 at 2 / 2.5 / 3 sd, std(theta) 0.6")

    def d(noise, beta, key):
        return mean[noise, beta][key] - mean[noise, 0.0][key]

    # data-aware noise: beta = -1/5 changes nothing measurable (and costs nothing)
    assert abs(d("data-aware", -0.2, "tail_2sd")) < 0.0015
    assert abs(d("data-aware", -0.2, "tail_2.5sd")) < 0.0012
    assert mean["data-aware", -0.2]["W1_theta"] < 1.1 * mean["data-aware", 0.0]["W1_theta"]
    assert mean["data-aware", -0.2]["W1_r"] < 1.2 * mean["data-aware", 0.0]["W1_r"]
    # beta = -1/2: 2 sd tail and std up (towards the truth), far tail beyond 3 sd down
    assert d("data-aware", -0.5, "tail_2sd") > 0.002
    assert d("data-aware", -0.5, "std_theta") > 0.005
    assert d("data-aware", -0.5, "tail_3sd") < 0.0
    # constant noise, noisy output: beta = -1/5 lowers the overshooting tails and std
    assert d("constant", -0.2, "tail_2sd") < -0.002
    assert d("constant", -0.2, "tail_2.5sd") < -0.0005
    assert (abs(mean["constant", -0.2]["std_theta"] - 0.6)
            < abs(mean["constant", 0.0]["std_theta"] - 0.6))


def test_semisphere_d9_minimum_near_paper():
    """d = 9, M = 1000: the OT distance has its minimum near the paper's eps = 0.05 (measured
    0.459 / 0.413 / 0.527 at eps 0.01 / 0.05 / 0.12; the OT noise at this size is ~0.005). The
    full table for d = 3, 4, 9 (``benchmarks/bench_diffmap.py --sweep``) is in docs/diffmap.md;
    d = 3 is asserted in the default run, d = 4 is flat within the noise below eps 0.05."""
    ot = [_semisphere_ot(9, e, 0.0) for e in (0.01, 0.05, 0.12)]
    print("d=9 OT at eps 0.01 / 0.05 / 0.12:", " ".join(f"{v:.4f}" for v in ot))
    assert ot[1] < 0.95 * ot[0] and ot[1] < 0.95 * ot[2]
