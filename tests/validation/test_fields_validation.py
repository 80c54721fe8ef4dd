"""The gridded-field case study at full size (docs/fields.md): 10^4 daily fields of
``xlangevin.systems.gridded``, 20 EOFs, a polynomial-score Langevin model against a LIM on the
same PCs. About 10 minutes on one core."""

import numpy as np
import pytest

import xlangevin as xl
from xlangevin import EOF, EffectiveLangevin
from xlangevin.systems import gridded

pytestmark = pytest.mark.slow

N_DAYS, DT = 10_000, 0.1


@pytest.fixture(scope="module")
def report():
    field = gridded.simulate(n_samples=N_DAYS, seed=0)["T"]
    eof = EOF(n_modes=20)
    sims = {}
    for name, score in (("model", "polynomial"), ("LIM", "gaussian")):
        m = EffectiveLangevin(cdot="logm", seed=0, progress=False).fit(field, score=score,
                                                                        reduce=eof)
        sims[name] = m.generate(int(N_DAYS / DT), DT, save_every=int(round(1 / DT)), seed=1,
                                burn_in=int(200 / DT), progress=False)
        assert np.isnan(sims[name].values[..., field.isnull().all("time").values]).all()
    return xl.compare_fields(field, sims["model"], baselines={"LIM": sims["LIM"]},
                             space=m.space)


def test_maps_match_the_data(report):
    model = report.sel(source="model")
    assert model.variance_pattern_correlation > 0.95
    assert model.acf1_pattern_correlation > 0.9
    assert model.variance_rmse < 0.1


def test_leading_pcs_beat_the_lim(report):
    lead = report.sel(mode=slice(1, 5))
    err = abs(lead.pc_skewness - lead.pc_skewness.sel(source="data")).max("mode")
    assert float(lead.pc_kl.sel(source="model").max()) < 0.02
    assert float(err.sel(source="model")) < 0.1
    assert float(err.sel(source="model")) < float(err.sel(source="LIM"))
    assert float(lead.pc_kl.sel(source="model").mean()) < float(
        lead.pc_kl.sel(source="LIM").mean())
