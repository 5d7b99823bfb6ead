"""Cox proportional hazards with Efron's tie correction, vectorised over event times (numpy only).

lifelines' CoxPHFitter spends almost all of a national-scale run in `_get_efron_values_batch`, a
Python loop over the distinct event times, and its CoxTimeVaryingFitter took minutes at 100,000
patients (issue #19). The same likelihood is computed here from cumulative sums over the
subjects sorted by time, and Efron's correction over one row per event (the l-th of the d deaths
at a time removes l/d of their weight from the risk set), so a Newton step is a handful of numpy
operations whatever the number of distinct times.

Counting-process data, (start, stop] intervals (time-varying covariates, R's
coxph(Surv(start, stop, event) ~ ...)), take the same sums: the risk set at t is the rows with
stop >= t minus those with start >= t, each a suffix sum over the rows sorted by that column.

The fit is R's coxph(ties = "efron"): covariates centred, Newton-Raphson from zero with step
halving when the log-likelihood falls, standard errors from the inverse information.
tests/analysis/test_cox_matches_r.py compares it with R and lifelines.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class CoxFit(NamedTuple):
    coef: np.ndarray
    se: np.ndarray
    loglik: float
    iterations: int
    converged: bool  # False: still moving after max_iter (e.g. a covariate separating the events)


class _RiskSets:
    """What does not change between Newton steps, for rows sorted by stop time: the blocks of
    rows sharing a stop (start) time, and where each death's risk set begins in them."""

    def __init__(self, time, event, start=None):
        # Rows sharing a stop time form a block; suffix sums over the blocks give the sums over
        # stop >= t (np.add.reduceat on sorted rows: no per-row fancy indexing per step).
        self.stop_blocks = np.flatnonzero(np.r_[True, time[1:] != time[:-1]])
        block_times = time[self.stop_blocks]
        self.dead = np.flatnonzero(event)  # deaths, earliest first (rows are sorted by time)
        td = time[self.dead]
        self.at_stop = np.searchsorted(block_times, td, side="left")  # stop >= t
        # Tied deaths: [first, last) of each death's time among the deaths; rank l = 0..d-1.
        self.tie_blocks = np.flatnonzero(np.r_[True, td[1:] != td[:-1]]) if len(td) else td
        self.first = np.searchsorted(td, td, side="left")
        self.last = np.searchsorted(td, td, side="right")
        self.tie_of = np.searchsorted(self.tie_blocks, self.first)
        self.frac = (np.arange(len(td)) - self.first) / (self.last - self.first)
        if start is None:
            self.by_start = None
        else:
            self.by_start = np.argsort(start, kind="stable")
            starts = start[self.by_start]
            self.start_blocks = np.flatnonzero(np.r_[True, starts[1:] != starts[:-1]])
            self.at_start = np.searchsorted(starts[self.start_blocks], td, side="left")

    @staticmethod
    def _suffix(values, blocks, at):
        """Sums of values over the rows from block `at` on (rows sorted, blocks contiguous)."""
        sums = np.add.reduceat(values, blocks, axis=0)
        sums = np.cumsum(sums[::-1], axis=0)[::-1]
        return np.concatenate([sums, np.zeros((1, values.shape[1]))])[at]

    def risk_sums(self, values):
        """Sums of values (rows x columns) over each death's risk set, start < t <= stop."""
        sums = self._suffix(values, self.stop_blocks, self.at_stop)
        if self.by_start is not None:
            sums -= self._suffix(values[self.by_start], self.start_blocks, self.at_start)
        return sums

    def tie_sums(self, values):
        """Sums of values over the deaths tied with each death."""
        return np.add.reduceat(values, self.tie_blocks, axis=0)[self.tie_of]


def _efron_terms(beta, x, risk_sets: _RiskSets):
    """Log partial likelihood, gradient and information at beta (x centred, sorted by time)."""
    p = x.shape[1]
    upper = np.triu_indices(p)  # x x' is symmetric: its upper triangle only
    eta = x @ beta
    shift = eta.max()
    w = np.exp(eta - shift)  # the shift cancels in every ratio below
    wx = w[:, None] * x
    stacked = np.column_stack([w, wx, wx[:, upper[0]] * x[:, upper[1]]])
    at_risk = risk_sets.risk_sums(stacked)
    dead = risk_sets.dead
    tied = risk_sets.tie_sums(stacked[dead])
    sums = at_risk - risk_sets.frac[:, None] * tied
    den = sums[:, 0]
    a = sums[:, 1 : 1 + p] / den[:, None]
    second = np.zeros((p, p))
    second[upper] = (sums[:, 1 + p :] / den[:, None]).sum(axis=0)
    second = second + np.triu(second, 1).T
    loglik = float((eta[dead] - shift).sum() - np.log(den).sum())
    grad = x[dead].sum(axis=0) - a.sum(axis=0)
    info = second - a.T @ a
    return loglik, grad, info


def cox_efron(
    time, event, covariates, *, start=None, tol: float = 1e-12, max_iter: int = 50
) -> CoxFit:
    """Coefficients, standard errors and log partial likelihood of the Cox model; `start` gives
    counting-process (start, stop] rows, `time` being their stop.

    Raises numpy.linalg.LinAlgError when the information matrix is singular (collinear
    covariates)."""
    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=float) != 0
    x = np.asarray(covariates, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    x = x - x.mean(axis=0)
    order = np.argsort(time, kind="stable")
    time, event, x = time[order], event[order], x[order]
    start = None if start is None else np.asarray(start, dtype=float)[order]
    risk_sets = _RiskSets(time, event, start)
    beta = np.zeros(x.shape[1])
    loglik, grad, info = _efron_terms(beta, x, risk_sets)
    converged, iterations = False, 0
    while iterations < max_iter:
        iterations += 1
        step = np.linalg.solve(info, grad)
        candidate = beta + step
        new_loglik, new_grad, new_info = _efron_terms(candidate, x, risk_sets)
        # Step halving when the log-likelihood falls, as R; a fall within rounding is none:
        # near the maximum a Newton step gains less than the last bits of the log-likelihood,
        # and halving it then would stop the fit ~1e-7 short of the maximum.
        noise = 1e-13 * max(1.0, abs(loglik))
        halvings = 0
        while not new_loglik >= loglik - noise and halvings < 30:  # also when NaN
            step = step / 2
            candidate = beta + step
            new_loglik, new_grad, new_info = _efron_terms(candidate, x, risk_sets)
            halvings += 1
        settled = abs(new_loglik - loglik) <= tol * max(1.0, abs(new_loglik))
        beta, loglik, grad, info = candidate, new_loglik, new_grad, new_info
        if settled and halvings == 0 and np.max(np.abs(step)) < 1e-9:
            converged = True
            break
    se = np.sqrt(np.diag(np.linalg.inv(info)))
    return CoxFit(beta, se, loglik, iterations, converged)
