"""Samplers learned directly from data: the diffusion-map Langevin sampler (Gottwald, Li,
Marzouk & Reich) with its kernel (:mod:`.kernel`), symmetric Sinkhorn scaling (:mod:`.sinkhorn`)
and the stochastic subgrid closure built on it (:mod:`.subgrid`)."""

from .diffusion_map import DiffusionMap, DiffusionMapSampler, diffmap
from .sinkhorn import symmetric_sinkhorn
from .subgrid import SubgridClosure, fit_subgrid_closure

__all__ = ["DiffusionMap", "DiffusionMapSampler", "diffmap", "fit_subgrid_closure",
           "SubgridClosure", "symmetric_sinkhorn"]
