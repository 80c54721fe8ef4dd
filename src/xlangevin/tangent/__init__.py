"""Tangent dynamics: Lyapunov spectra by the QR (Benettin) method.

* :mod:`.lyapunov` — :func:`lyapunov`: exponents, standard errors, Kaplan–Yorke dimension and
  backward Lyapunov vectors of a simulator (ODE or random dynamical system), a fitted
  :class:`~xlangevin.LangevinModel`, a map or a drift callable;
* :mod:`.engine` — the numba kernels (fused state + tangent integration, QR);
* :mod:`.maps` — one-step tangent maps of models and callables;
* :mod:`.flow_map` — :class:`FlowMap` -> :class:`FlowMapModel`: learned one-step maps (MSE or
  Jacobian-matching loss) and :func:`simulator_flow_map` (a simulator's map and Jacobian);
* :mod:`.report` — :func:`physical_measure_report`: orbit W1, time averages and exponents of
  a learned map against data;
* :mod:`.sampler` — :func:`sampler_lyapunov`, :func:`support_error`: finite-time Lyapunov
  vectors of a generative sampler and the support error under a perturbed drift.
"""

from .flow_map import FlowMap, FlowMapModel, simulator_flow_map
from .lyapunov import kaplan_yorke, lyapunov
from .report import physical_measure_report, sliced_wasserstein1
from .sampler import sampler_lyapunov, support_error

__all__ = ["lyapunov", "kaplan_yorke", "FlowMap", "FlowMapModel", "simulator_flow_map",
           "physical_measure_report", "sliced_wasserstein1", "sampler_lyapunov",
           "support_error"]
