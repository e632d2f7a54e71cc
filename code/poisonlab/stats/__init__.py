"""Statistics of sweeps: intervals (Student t, seed jackknife), tidy summaries, fitted laws, the laws table."""
from .fits import Fit, fit_affine, fit_curve, fit_power, sigma_from_ci
from .intervals import jackknife, jackknife_interval, mean_ci
from .laws import Law, agreement, counts, exceptions, holm, table
from .summary import rows_where, summarize

__all__ = ["Fit", "exceptions", "fit_power", "fit_affine", "fit_curve", "sigma_from_ci", "mean_ci", "jackknife",
           "jackknife_interval", "Law", "agreement", "counts", "holm", "table", "rows_where", "summarize"]
