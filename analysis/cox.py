"""Cox proportional hazards with Efron's tie correction, vectorised over event times (numpy only).

lifelines' CoxPHFitter spends almost all of a national-scale run in `_get_efron_values_batch`, a
Python loop over the distinct event times (issue #19). The same likelihood is computed here from
cumulative sums over the subjects sorted by time, and Efron's correction over one row per event
(the l-th of the d deaths at a time removes l/d of their weight from the risk set), so a Newton
step is a handful of numpy operations whatever the number of distinct times.

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


def _efron_terms(beta, x, time, event):
    """Log partial likelihood, gradient and information at beta (x centred, any order)."""
    eta = x @ beta
    w = np.exp(eta - eta.max())  # the shift cancels in every ratio below
    order = np.argsort(-time, kind="stable")  # latest first: a risk set is a prefix
    t, d, xs, ws = time[order], event[order], x[order], w[order]
    wx = ws[:, None] * xs
    wxx = wx[:, :, None] * xs[:, None, :]
    # Risk-set sums at each subject's time, ties included: the cumulative sum at the last
    # subject (in this order) with the same time.
    last_of_tie = np.searchsorted(-t, -t, side="right") - 1
    s0 = np.cumsum(ws)[last_of_tie]
    s1 = np.cumsum(wx, axis=0)[last_of_tie]
    s2 = np.cumsum(wxx, axis=0)[last_of_tie]
    # Deaths: group by time; sums of the deaths' weights per tied time.
    dead = d.astype(bool)
    td = t[dead]
    start = np.searchsorted(-td, -td, side="left")  # first death of each death's time
    end = np.searchsorted(-td, -td, side="right")
    count = end - start
    rank = np.arange(len(td)) - start  # l = 0..d-1 within the tie
    frac = rank / count

    def tie_sum(values):
        c = np.concatenate([np.zeros((1, *values.shape[1:])), np.cumsum(values, axis=0)])
        return c[end] - c[start]

    e0 = tie_sum(ws[dead])
    e1 = tie_sum(wx[dead])
    e2 = tie_sum(wxx[dead])
    den = s0[dead] - frac * e0
    num1 = s1[dead] - frac[:, None] * e1
    num2 = s2[dead] - frac[:, None, None] * e2
    a = num1 / den[:, None]
    loglik = float((eta[order][dead] - eta.max()).sum() - np.log(den).sum())
    grad = xs[dead].sum(axis=0) - a.sum(axis=0)
    info = (num2 / den[:, None, None]).sum(axis=0) - a.T @ a
    return loglik, grad, info


def cox_efron(time, event, covariates, *, tol: float = 1e-12, max_iter: int = 50) -> CoxFit:
    """Coefficients, standard errors and log partial likelihood of the Cox model."""
    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=float)
    x = np.asarray(covariates, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    x = x - x.mean(axis=0)
    beta = np.zeros(x.shape[1])
    loglik, grad, info = _efron_terms(beta, x, time, event)
    converged, iterations = False, 0
    while iterations < max_iter:
        iterations += 1
        step = np.linalg.solve(info, grad)
        candidate = beta + step
        new_loglik, new_grad, new_info = _efron_terms(candidate, x, time, event)
        halvings = 0
        while not new_loglik >= loglik and halvings < 30:  # also when NaN
            step = step / 2
            candidate = beta + step
            new_loglik, new_grad, new_info = _efron_terms(candidate, x, time, event)
            halvings += 1
        settled = abs(new_loglik - loglik) <= tol * max(1.0, abs(new_loglik))
        beta, loglik, grad, info = candidate, new_loglik, new_grad, new_info
        if settled and np.max(np.abs(step)) < 1e-9:
            converged = True
            break
    se = np.sqrt(np.diag(np.linalg.inv(info)))
    return CoxFit(beta, se, loglik, iterations, converged)
