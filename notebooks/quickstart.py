# %% [markdown]
# # xlangevin quick start
# A percent-format script (open it in Jupyter with jupytext, or run it as a script):
# simulate a benchmark system, look at it through the data layer, and compare the sample
# histogram with the exact stationary density.

# %%
import numpy as np

import xlangevin
from xlangevin import FeatureSpace, systems

ds = systems.potential.simulate(n_samples=50_000, C=0.8, seed=0, progress=False)
print(ds)

# %% The data layer: labeled data -> standardized (samples, features) array and back
space = FeatureSpace.fit(ds.x)
X = space.transform(ds.x)
print(space, X.shape, X.mean(0).round(12), X.std(0))
back = space.inverse_transform(X, coords={"time": ds.time})
assert np.allclose(back.values, ds.x.values)

# %% Sample histogram of x_0 against the exact marginal density
edges = np.linspace(-2.5, 2.5, 51)
hist, _ = np.histogram(ds.x.sel(k=0), bins=edges, density=True)
centres = 0.5 * (edges[1:] + edges[:-1])
exact = systems.potential.marginal_density(centres, axis=0)
print("L1 distance of the histogram:", np.sum(np.abs(hist - exact)) * (edges[1] - edges[0]))
