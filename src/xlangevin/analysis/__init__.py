"""Analysis of time series and of models against data.

* :mod:`.stats`: statistics of one series (ACF, integrated autocorrelation time, effective
  sample size);
* :mod:`.distances`: distances between distributions (KL, Hellinger, W1, ACF RMSE) and
  :mod:`.ot`, the entropic optimal-transport distance (POT);
* :mod:`.report`: :func:`compare`, data vs simulation as an ``xr.Dataset`` report, and
  :func:`format_report`, its distances as a table;
* :mod:`.fields`: :func:`compare_fields`, spatial diagnostics of gridded fields (maps,
  EOF spectrum, area-mean PDF and ACF); :mod:`.maps`: :func:`field_maps`, their maps (cartopy
  with offline coastlines, or plain axes);
* :mod:`.plot`: figures of a report and of model matrices (matplotlib is imported only when a
  figure is drawn, so importing this package does not need it).

This layer depends only on :mod:`xlangevin.data`, :mod:`xlangevin.io` and
:mod:`xlangevin.base`, never on the estimators or models.
"""

from . import plot
from .fields import compare_fields
from .maps import field_maps
from .distances import KL_FLOOR, acf_rmse, hellinger, kl_divergence, wasserstein1
from .ot import entropic_ot_distance
from .report import compare, format_report
from .stats import (acf, effective_sample_size, integrated_autocorrelation_time,
                    integrated_time_from_acf)

__all__ = ["KL_FLOOR", "acf", "acf_rmse", "compare", "compare_fields", "effective_sample_size",
           "entropic_ot_distance", "field_maps", "format_report", "hellinger",
           "integrated_autocorrelation_time", "integrated_time_from_acf", "kl_divergence", "plot",
           "wasserstein1"]
