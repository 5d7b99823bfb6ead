"""Build the paper's twin: registry/data/paper_twin.csv and paper_twin_adverse_events.csv.

A constraint-satisfaction job, run by hand (never at test time); its output is frozen in those
two files, which `seed_demo` loads. The targets are read from analysis/data/paper_printed.csv,
the one place the paper's printed numbers live:

1. Survival (the slow part): a simulated annealing over each patient's days of progression,
   death, transplant and last contact, within what the patient's path through the treatment flow
   allows (Figure 1 and the Results text: who got a second cycle, who was in remission when), until
   the Kaplan-Meier medians, the log-rank P values, the median follow-up (reverse Kaplan-Meier),
   the 18 deaths, the 28 progressions and the 16 transplants are the printed ones.
2. Subgroups and baseline (Tables 1 and 2): each Table 2 variable is assigned to the responders
   and non-responders in the printed numbers, with the dependencies the text states (CNS disease
   only with marrow relapse, the extramedullary responders, the patient with exactly 50% marrow
   blasts that Tables 1 and 2 imply, prior transplant only after enough time from diagnosis...).
3. Responses: each assessment's marrow blasts, counts and extramedullary status are chosen so
   that registry.rules.derive_response gives the response the flow needs.
4. Adverse events (Table 3): patients by worst grade per row, within CTCAE v4.03, dated inside the
   cycles; the neurologic and CRS stories of the Toxicity paragraph.
5. Dates: enrolment June 2016 - August 2017, data cut-off 2018-01-31; every record of a case on
   or before its last contact (or death), so that censoring at the latest record is censoring at
   the last contact.

The result is checked with the project's own functions and with R's survival package (survfit
medians, survdiff P values) before the files are written.

Usage:
    python scripts/build_paper_twin.py --solve [--iterations N] [--seed S]   # search, ~minutes
    python scripts/build_paper_twin.py          # the files, from scripts/paper_twin_survival.json
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import math
import random
import re
import subprocess
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analysis import survival, tables  # noqa: E402  (plain pandas, no Django)
from registry import ctcae, rules  # noqa: E402

PRINTED = pd.read_csv(ROOT / "analysis/data/paper_printed.csv", dtype=str, keep_default_na=False)
OUT_PATIENTS = ROOT / "registry/data/paper_twin.csv"
OUT_EVENTS = ROOT / "registry/data/paper_twin_adverse_events.csv"
SURVIVAL_JSON = ROOT / "scripts/paper_twin_survival.json"  # the search's frozen result
M = 30.4375  # days per month, as analysis.dataset
CUTOFF = date(2018, 1, 31)
ENROL_FIRST, ENROL_LAST = date(2016, 6, 1), date(2017, 8, 31)
NUMBER = re.compile(r"\d+(?:\.\d+)?")


@functools.cache
def printed(key: str) -> list[float]:
    """The numbers printed for `key` in paper_printed.csv, in their printed order."""
    row = PRINTED[PRINTED["key"] == key]
    if row.empty:
        raise KeyError(key)
    text = row["printed"].iloc[0]
    return [float(x) for x in NUMBER.findall(text)] or [0.0]


@functools.cache
def printed_p(key: str) -> float | None:
    """A printed P value; None for '< 0.001'."""
    text = PRINTED.loc[PRINTED["key"] == key, "printed"].iloc[0]
    return None if text.strip().startswith("<") else float(text)


# ---------------------------------------------------------------------------------------------
# 1. Survival
# ---------------------------------------------------------------------------------------------

# The paths of Figure 1, as the twin reads the Results text (reproduction.csv says why):
#   D   died of infection in cycle 1 before any assessment
#   R1  CR/CRi after cycle 1, cycle 2, still in remission after it (14)
#   R2  CR/CRi after cycle 1, cycle 2, progressive disease after it (3)
#   R3a CR after cycle 1, the CNS patient stopped by grade 3 neurotoxicity (no cycle 2)
#   R3b CR/CRi after cycle 1, straight to allogeneic SCT (2)
#   R4  persistent disease after cycle 1, cycle 2, CR after it (2)
#   N1  persistent disease after cycle 1, cycle 2, still no response (9)
#   N2  persistent disease after cycle 1, no cycle 2 (15)
#   N3  not assessed after cycle 1, cycle 2, progressive disease after it (3)
PATHS = {"D": 1, "R1": 14, "R2": 3, "R3a": 1, "R3b": 2, "R4": 2, "N1": 9, "N2": 15, "N3": 3}
TYPES = [t for t, n in PATHS.items() for _ in range(n)]
RESPONDER_PATHS = {"R1", "R2", "R3a", "R3b", "R4"}
SCT_PATHS = {"R1", "R3b", "R4"}  # the abstract: the 16 transplanted were responders
CYCLE2_PATHS = {"R1", "R2", "R4", "N1", "N3"}
C1_END, C2_START, C2_END = 27, 42, 69  # days from day 1 (day 0 here)
NEUROTOX_DAY = C2_START  # R3a: grade 3 neurotoxicity on the day cycle 2 was due


def km_median_days(t, e) -> float:
    t = np.asarray(t, float)
    if len(t) == 0:
        return math.nan
    return survival.km_median(t / M, np.asarray(e, float))[0]


def _tab(t, e):
    times, inv = np.unique(t, return_inverse=True)
    removed = np.bincount(inv, minlength=len(times))
    d = np.bincount(inv, weights=e.astype(float), minlength=len(times))
    n = len(t) - (np.cumsum(removed) - removed)
    return times, n, d


def fast_median(t, e) -> tuple[float, float]:
    """(median in months, lowest survival - 0.5): R's rule, fast enough for the search."""
    t = np.asarray(t, float)
    e = np.asarray(e, bool)
    times, n, d = _tab(t, e)
    surv = np.cumprod(1 - d / n)
    eps = np.finfo(float).eps ** 0.5
    keep = surv < 0.5 + eps
    if not keep.any():
        return math.nan, float(surv[-1] - 0.5)
    c, tt = surv[keep], times[keep]
    if abs(c[0] - 0.5) < eps and (c < c[0]).any():
        return (tt[0] + tt[np.argmax(c < c[0])]) / 2 / M, 0.0
    return tt[0] / M, 0.0


def fast_logrank(t, e, g) -> float:
    t, e, g = np.asarray(t, float), np.asarray(e, bool), np.asarray(g, bool)
    times, inv = np.unique(t, return_inverse=True)
    removed = np.bincount(inv, minlength=len(times))
    n = len(t) - (np.cumsum(removed) - removed)
    r1 = np.bincount(inv, weights=g.astype(float), minlength=len(times))
    n1 = g.sum() - (np.cumsum(r1) - r1)
    d = np.bincount(inv, weights=e.astype(float), minlength=len(times))
    d1 = np.bincount(inv, weights=(e & g).astype(float), minlength=len(times))
    m = d > 0
    n, n1, d, d1 = n[m], n1[m], d[m], d1[m]
    observed, expected = d1.sum(), (d * n1 / n).sum()
    var = np.where(n > 1, d * (n1 / n) * (1 - n1 / n) * (n - d) / np.maximum(n - 1, 1), 0).sum()
    return float(stats.chi2.sf((observed - expected) ** 2 / var, 1)) if var > 0 else 1.0


def records_end(p) -> int:
    """The last day of the patient's treatment records (cycles, assessments, SCT, progression)."""
    days = [x for x in (p["a1"], p["a2"], p["sct"], p["prog"]) if x]
    days.append(C2_END if p["ty"] in CYCLE2_PATHS else C1_END)
    if p["ty"] == "R3a":
        days.append(NEUROTOX_DAY + 14)
    return max(days)


def outcome(p):
    """(efs_day, efs_event, efs_cause, os_day, os_event)."""
    os_day, os_event = (p["death"], 1) if p["death"] is not None else (p["last"], 0)
    if p["prog"] is not None:
        return p["prog"], 1, 1, os_day, os_event
    if p["death"] is not None:
        return p["death"], 1, 2, os_day, os_event
    return os_day, 0, 0, os_day, os_event


def valid(p) -> bool:
    ty, a1, a2, prog, sct = p["ty"], p["a1"], p["a2"], p["prog"], p["sct"]
    if prog is not None:
        if ty in ("N1", "N2") and prog < a1:
            return False  # progression recorded at or after the first assessment
        if ty in ("R1", "R4") and prog < a2 + 14:
            return False  # relapse after the remission seen after cycle 2
        if ty in ("R3a", "R3b") and prog < a1 + 14:
            return False
        if ty in ("R2", "N3") and prog != a2:
            return False  # progressive disease at the assessment after cycle 2
    if sct is not None:
        if ty in ("R1", "R4") and sct < a2 + 7:
            return False
        if ty == "R3b" and sct < a1 + 10:
            return False
    end = records_end(p)
    if p["death"] is not None:
        if p["ty"] != "D" and p["death"] < end + 5:
            return False
        if p["prog"] is not None and p["death"] < p["prog"] + 7:
            return False
        # Death without progression: only transplant-related (and the cycle-1 infection death).
        if (
            p["prog"] is None
            and p["ty"] != "D"
            and (p["sct"] is None or p["death"] < p["sct"] + 20)
        ):
            return False
    elif p["last"] < end or p["last"] > 560:
        return False
    if p["sct"] is not None and p["prog"] is not None and p["sct"] > p["prog"]:
        return False  # transplanted in remission
    return True


TARGETS = {
    "efs_all": ("km_median:efs|overall|all", None),
    "os_all": ("km_median:os|overall|all", None),
    "efs_R": ("km_median:efs|responder|yes", None),
    "efs_N": ("km_median:efs|responder|no", None),
    "os_R": ("km_median:os|responder|yes", None),
    "os_N": ("km_median:os|responder|no", None),
    "efs_S": ("km_median:efs|allo_sct_after|yes", None),
    "efs_nS": ("km_median:efs|allo_sct_after|no", None),
    "os_S": ("km_median:os|allo_sct_after|yes", None),
    "os_nS": ("km_median:os|allo_sct_after|no", None),
    "fu": ("text:followup_median", None),
}
P_TARGETS = {
    "p_efs_R": "logrank:efs|responder",
    "p_os_R": "logrank:os|responder",
    "p_efs_S": "logrank:efs|allo_sct_after",
    "p_os_S": "logrank:os|allo_sct_after",
}


def survival_figures(state) -> dict:
    rows = [outcome(p) for p in state]
    efs_t, efs_e, cause, os_t, os_e = (np.array(x) for x in zip(*rows, strict=True))
    resp = np.array([p["ty"] in RESPONDER_PATHS for p in state])
    sct = np.array([p["sct"] is not None for p in state])
    groups = {
        "efs_all": (efs_t, efs_e),
        "os_all": (os_t, os_e),
        "efs_R": (efs_t[resp], efs_e[resp]),
        "efs_N": (efs_t[~resp], efs_e[~resp]),
        "os_R": (os_t[resp], os_e[resp]),
        "os_N": (os_t[~resp], os_e[~resp]),
        "efs_S": (efs_t[sct], efs_e[sct]),
        "efs_nS": (efs_t[~sct], efs_e[~sct]),
        "os_S": (os_t[sct], os_e[sct]),
        "os_nS": (os_t[~sct], os_e[~sct]),
        "fu": (os_t, 1 - os_e),
    }
    r = {}
    for name, (t, e) in groups.items():
        r[name], r[f"short_{name}"] = fast_median(t, e)
    r["p_efs_R"] = fast_logrank(efs_t, efs_e, resp)
    r["p_os_R"] = fast_logrank(os_t, os_e, resp)
    r["p_efs_S"] = fast_logrank(efs_t, efs_e, sct)
    r["p_os_S"] = fast_logrank(os_t, os_e, sct)
    r["deaths"] = int(os_e.sum())
    r["prog"] = int((cause == 1).sum())
    r["sct"] = int(sct.sum())
    r["pd_at_a1"] = sum(1 for p in state if p["ty"] in ("N1", "N2") and p["prog"] == p["a1"])
    return r


def cost(r) -> float:
    c = 0.0
    for name, (key, _) in TARGETS.items():
        target = printed(key)[0]
        if math.isnan(r[name]):
            c += 3 + 10 * r[f"short_{name}"]
        else:
            c += 10 * max(0.0, abs(r[name] - target) - 0.035)
    for name, key in P_TARGETS.items():
        p = printed_p(key)
        if p is None:
            c += 3 * max(0.0, math.log10(r[name]) - math.log10(0.0008))
        else:
            c += 100 * max(0.0, abs(r[name] - p) - 0.0003)
    c += 4 * abs(r["deaths"] - printed("text:deaths")[0])
    c += 4 * abs(r["prog"] - printed("text:progressions")[0])
    c += 4 * abs(r["sct"] - printed("flow:allo_sct_after")[0])
    c += 2 * max(0, printed("text:cns_pd_after_cycle1")[0] - r["pd_at_a1"])
    return c


def new_state(rng) -> list[dict]:
    state = []
    for ty in TYPES:
        p = dict(ty=ty, a1=rng.randint(28, 34), a2=rng.randint(70, 76), sct=None, prog=None)
        p.update(death=None, last=rng.randint(100, 400))
        if ty == "D":
            p.update(death=rng.randint(9, 18), a1=None, a2=None)
        if ty in ("N2", "R3a", "R3b"):
            p["a2"] = None
        if ty == "N3":
            p["a1"] = None
        if ty in ("R2", "N3"):
            p["prog"] = p["a2"]
        if ty == "R3b":
            p["sct"] = rng.randint(50, 100)
        if ty in ("N1", "N2"):
            p["prog"] = rng.randint(p["a1"], 90)
            if rng.random() < 0.6:
                p["death"] = p["prog"] + rng.randint(30, 150)
        if ty in ("R1", "R4") and rng.random() < 0.85:
            p["sct"] = rng.randint(90, 130)
        p["last"] = max(p["last"], records_end(p))
        state.append(p)
    return state


def mutate(state, rng):
    i = rng.randrange(len(state))
    p, ty = dict(state[i]), state[i]["ty"]
    if ty == "D":
        return None
    k = rng.random()
    if k < 0.25:
        if p["death"] is None or rng.random() < 0.3:
            dead = p["death"] is not None and rng.random() < 0.5
            p["death"] = None if dead else rng.randint(40, 520)
        else:
            p["death"] = max(10, p["death"] + rng.randint(-30, 30))
    elif k < 0.5:
        if ty in ("R2", "N3"):
            p["a2"] = rng.randint(70, 76)
            p["prog"] = p["a2"]
        elif p["prog"] is None or rng.random() < 0.3:
            if p["prog"] is not None and rng.random() < 0.5:
                p["prog"] = None
            elif ty in ("N1", "N2") and rng.random() < 0.4:
                p["prog"] = p["a1"]
            else:
                lo = p["a1"] if ty in ("N1", "N2") else (p["a2"] or p["a1"]) + 14
                if p["sct"]:
                    lo = max(lo, p["sct"] + 14)
                p["prog"] = rng.randint(lo, lo + 300)
        else:
            p["prog"] = max(28, p["prog"] + rng.randint(-20, 20))
    elif k < 0.75:
        p["last"] = max(28, p["last"] + rng.randint(-40, 40))
        if rng.random() < 0.1:
            p["last"] = rng.randint(30, 540)
    elif k < 0.9:
        if ty in ("R1", "R4"):
            if p["sct"] is None:
                lo = (p["a2"] or p["a1"] or 40) + 10
                p["sct"] = rng.randint(lo, lo + 90)
            elif rng.random() < 0.5:
                p["sct"] = None
            else:
                p["sct"] = max(45, p["sct"] + rng.randint(-15, 15))
        elif ty == "R3b":
            p["sct"] = rng.randint(45, 110)
    else:
        if p["a1"] is not None:
            moved = p["prog"] == p["a1"]
            p["a1"] = rng.randint(28, 34)
            if moved:
                p["prog"] = p["a1"]
        if p["a2"] is not None:
            p["a2"] = rng.randint(70, 76)
        if ty in ("R2", "N3"):
            p["prog"] = p["a2"]
    if not valid(p):
        return None
    return state[:i] + [p] + state[i + 1 :]


def anneal(seed, iterations, start=None, t0=2.0, log=None):
    log = log or functools.partial(print, flush=True)
    rng = random.Random(seed)
    state = start if start and all(valid(p) for p in start) else new_state(rng)
    while not all(valid(p) for p in state):
        state = new_state(rng)
    current = cost(survival_figures(state))
    best, best_cost = state, current
    for it in range(iterations):
        if it % 5000 == 0:
            log(f"iteration {it}: cost {best_cost:.4f}")
        temperature = t0 * (1 - it / iterations) + 0.01
        proposal = mutate(state, rng)
        if proposal is None:
            continue
        c = cost(survival_figures(proposal))
        if c <= current or rng.random() < math.exp((current - c) / temperature):
            state, current = proposal, c
            if c < best_cost:
                best, best_cost = proposal, c
                if best_cost == 0:
                    break
    return best, best_cost


# ---------------------------------------------------------------------------------------------
# 2-5. The cohort around the survival times
# ---------------------------------------------------------------------------------------------

SITES = [  # patients per site: 50 over the 16 sites (every site has patients)
    ("KR01", 6), ("KR02", 5), ("KR03", 4), ("KR04", 4), ("KR05", 4), ("KR06", 4),
    ("KR07", 3), ("KR08", 3), ("KR09", 3), ("KR10", 3), ("KR11", 2), ("KR12", 2),
    ("KR13", 2), ("KR14", 2), ("KR15", 2), ("KR16", 1),
]  # fmt: skip
OTHER_EMD_SITES = ["lymph_node", "lymph_node", "liver", "uterus", "bone", "skin", "skin"]
PREPHASE_WITH_DEX = ["dex", "hu_dex", "cy_dex", "arac_dex_hu", "etop_dex"]
SALVAGE_REGIMENS = ["FLAG-Ida", "HyperCVAD", "MEC", "Clofarabine-based", "Cytarabine-mitoxantrone"]
DONORS = ["matched_sibling", "matched_unrelated", "haploidentical", "mismatched_unrelated"]


def level_counts(variable: str, level: str) -> tuple[int, int]:
    """(responders, non-responders) printed for a Table 2 level."""
    _, k, n = printed(f"table2:{variable}|{level}")
    return int(k), int(n - k)


class Cohort:
    def __init__(self, state, seed=20180926):
        self.rng = random.Random(seed)
        self.p = [dict(p, i=i, resp=p["ty"] in RESPONDER_PATHS) for i, p in enumerate(state)]
        for p in self.p:
            p["evaluable"] = p["ty"] != "D"
            p["pd_a1"] = p["ty"] in ("N1", "N2") and p["prog"] == p["a1"]
            p["pd_a2"] = p["ty"] in ("R2", "N3")
            p["events"] = []

    # -- helpers --------------------------------------------------------------------------------

    def pick(self, pool, n, why):
        pool = list(pool)
        if len(pool) < n:
            raise RuntimeError(f"{why}: need {n}, only {len(pool)} eligible")
        return self.rng.sample(pool, n)

    def where(self, **conditions):
        out = self.p
        for key, value in conditions.items():
            out = [p for p in out if (value(p[key]) if callable(value) else p[key] == value)]
        return out

    def split(self, variable, level2, flag, eligible=lambda p: True, dead_value=None):
        """Set p[flag] True for the printed number of responders and non-responders of
        Table 2's second level, False for the rest of the evaluable; the patient who died
        before any assessment gets `dead_value`."""
        c, d = level_counts(variable, level2)
        for p in self.p:
            p[flag] = False
        for responders, n in ((True, c), (False, d)):
            pool = [p for p in self.p if p["evaluable"] and p["resp"] == responders and eligible(p)]
            for p in self.pick(pool, n, f"{variable} {level2}"):
                p[flag] = True
        self.p[0][flag] = dead_value

    # -- steps --------------------------------------------------------------------------------
    def run(self):
        self.sex()
        self.extramedullary()
        self.marrow_blasts()
        self.cytogenetics()
        self.age_salvage_ecog()
        self.transplant_and_diagnosis()
        self.dexamethasone()
        self.responses()
        self.adverse_events()
        self.subsequent_therapy()
        self.dates()
        return self

    def sex(self):
        self.split("sex", "female", "female", dead_value=True)

    def extramedullary(self):
        for p in self.p:
            p.update(relapse_site="marrow", emd_sites=[], cns=False)
        dead = self.p[0]
        dead.update(relapse_site="extramedullary")
        cns_responder = self.where(ty="R3a")[0]
        cns_responder.update(relapse_site="both", cns=True)
        cns_pd = self.pick(
            [p for p in self.p if p["pd_a1"] and p["ty"] == "N2"],
            int(printed("text:cns_pd_after_cycle1")[0]),
            "CNS disease, progressive after cycle 1",
        )
        for p in cns_pd:
            p.update(relapse_site="both", cns=True)
        both_k, _, both_n = printed("text:responders_marrow_and_emd")
        only_k, _, only_n = printed("text:responders_emd_only")
        free = lambda p: p["relapse_site"] == "marrow" and p["evaluable"]  # noqa: E731
        for site, k, n in (("both", both_k, both_n), ("extramedullary", only_k, only_n)):
            have_r = len([p for p in self.p if p["relapse_site"] == site and p["resp"]])
            have_n = len([p for p in self.p if p["relapse_site"] == site and p["evaluable"]])
            have_n -= have_r
            for p in self.pick([p for p in self.p if free(p) and p["resp"]], int(k) - have_r, site):
                p["relapse_site"] = site
            pool = [p for p in self.p if free(p) and not p["resp"]]
            for p in self.pick(pool, int(n - k) - have_n, site):
                p["relapse_site"] = site
        others = [p for p in self.p if p["relapse_site"] != "marrow" and not p["cns"]]
        sites = list(OTHER_EMD_SITES)
        assert len(others) == len(sites), (len(others), len(sites))
        uterus = self.rng.choice([p for p in others if p["female"]])
        uterus["emd_sites"] = ["uterus"]
        sites.remove("uterus")
        self.rng.shuffle(sites)
        for p in others:
            if not p["emd_sites"]:
                p["emd_sites"] = [sites.pop()]
        for p in self.p:
            if p["cns"]:
                p["emd_sites"] = ["cns"]
        for p in self.p:
            p["emd"] = p["relapse_site"] != "marrow"

    def marrow_blasts(self):
        """43 marrow blast counts (Table 1); the rest extramedullary relapses without a marrow
        count, or marrow relapses shown in the blood (blood blast count only)."""
        for p in self.p:
            p["blasts"] = None
            p["pd_by_blasts"] = (p["pd_a1"] or p["pd_a2"]) and not p["emd"]
        only = [p for p in self.p if p["relapse_site"] == "extramedullary"]
        only_n = [p for p in only if p["evaluable"] and not p["resp"]]
        four = self.rng.choice(only_n)  # the range's 4%: extramedullary only, marrow below 5%
        four["blasts"] = 4.0
        # Table 2: evaluable patients without a count (printed n's: 43 with a count).
        lo_r, lo_n = level_counts("marrow_blasts", "<=50%")
        hi_r, hi_n = level_counts("marrow_blasts", ">50%")
        resp_total = sum(p["resp"] for p in self.p if p["evaluable"])
        missing_r = resp_total - lo_r - hi_r
        missing_n = sum(not p["resp"] for p in self.p if p["evaluable"]) - lo_n - hi_n
        missing_only_r = [p for p in only if p["resp"]]
        missing_only_n = [p for p in only_n if p is not four]
        blood_only_r = missing_r - len(missing_only_r)
        blood_only_n = missing_n - len(missing_only_n)
        plain = [p for p in self.p if p["relapse_site"] == "marrow" and not p["pd_by_blasts"]]
        blood = self.pick([p for p in plain if p["resp"]], blood_only_r, "blood only")
        blood += self.pick(
            [p for p in plain if p["evaluable"] and not p["resp"]], blood_only_n, "blood only"
        )
        for p in blood:
            p["blood_only"] = True
        with_count = [
            p for p in self.p if p["relapse_site"] != "extramedullary" and not p.get("blood_only")
        ]
        assert len(with_count) + 1 == 43, len(with_count)
        # Table 2's bands (<= 50% / > 50%): the 4% patient is one of the low ones.
        low = [four]
        low += self.pick([p for p in with_count if p["resp"]], lo_r, "low blasts")
        low += self.pick([p for p in with_count if not p["resp"]], lo_n - 1, "low blasts")
        high = [p for p in with_count if p not in low]
        # One exactly 50% (Table 1's >= 50% has 35, Table 2's > 50% has 34); the median of the
        # 43 counts is 81, their range 4-99.
        others_low = [p for p in low if p is not four]
        fifty = self.rng.choice(others_low)
        fifty["blasts"] = 50.0
        for p in others_low:
            if p is not fifty:
                p["blasts"] = float(self.rng.randint(12, 48))
        n_below_median = 21 - len(low)  # 43 values: the 22nd is the median
        below = sorted(self.rng.sample(range(52, 81), n_below_median))
        above = [99] + [self.rng.randint(82, 98) for _ in range(len(high) - n_below_median - 2)]
        pd_high = [p for p in high if p["pd_by_blasts"]]  # progression needs blasts <= 80
        if len(pd_high) > n_below_median:
            raise RuntimeError("too many patients need a low baseline")
        rest = [p for p in high if not p["pd_by_blasts"]]
        values = below + [81] + above
        low_values = self.rng.sample(below, len(pd_high))
        for p, v in zip(pd_high, low_values, strict=True):
            p["blasts"] = float(v)
        remaining = [v for v in values if v not in low_values or values.count(v) > 1]
        self.rng.shuffle(remaining)
        for p, v in zip(rest, remaining, strict=True):
            p["blasts"] = float(v)
        for p in self.p:
            if p["relapse_site"] == "extramedullary":
                p["pb"] = 0
            elif p.get("blood_only"):
                p["pb"] = self.rng.randint(8000, 42000)
            else:
                p["pb"] = int(min(150000, math.exp(self.rng.gauss(7.8, 1.6))))

    def cytogenetics(self):
        self.split(
            "cyto_risk_start",
            "high",
            "start_high",
            eligible=lambda p: True,
            dead_value=None,
        )
        std_r, std_n = level_counts("cyto_risk_start", "standard")
        for p in self.p:
            p["start_known"] = p["start_high"]
        for responders, n in ((True, std_r), (False, std_n)):
            pool = [p for p in self.p if p["evaluable"] and p["resp"] == responders]
            pool = [p for p in pool if not p["start_high"]]
            for p in self.pick(pool, n, "cytogenetics at start"):
                p["start_known"] = True
        self.p[0]["start_known"] = False
        # At diagnosis: high risk among those high at start where possible.
        hi_r, hi_n = level_counts("cyto_risk_diagnosis", "high")
        dstd_r, dstd_n = level_counts("cyto_risk_diagnosis", "standard")
        for p in self.p:
            p["dx_high"], p["dx_known"] = False, False
        for responders, n_high, n_std in ((True, hi_r, dstd_r), (False, hi_n, dstd_n)):
            pool = [p for p in self.p if p["evaluable"] and p["resp"] == responders]
            preferred = [p for p in pool if p["start_high"]]
            for p in self.pick(preferred, n_high, "high risk at diagnosis"):
                p["dx_high"] = p["dx_known"] = True
            for p in self.pick([p for p in pool if not p["dx_known"]], n_std, "standard at dx"):
                p["dx_known"] = True
        self.p[0]["dx_known"] = True
        for p in self.p:
            p["cyto_dx"] = self.karyotype(p["dx_known"], p["dx_high"])
            if p["start_known"] and p["start_high"] == p["dx_high"] and p["dx_known"]:
                p["cyto_start"] = p["cyto_dx"]
            else:
                p["cyto_start"] = self.karyotype(p["start_known"], bool(p["start_high"]))

    def karyotype(self, known, high):
        """(done, abnormalities, modal number, KMT2A) giving the risk group."""
        if not known:
            return (False, None, None, False)
        if not high:
            return (True, self.rng.choice([0, 0, 1, 1, 2, 3]), self.rng.choice([46, 46, 47]), False)
        kind = self.rng.choice(["complex", "hypodiploid", "kmt2a"])
        if kind == "complex":
            return (True, self.rng.randint(5, 8), self.rng.randint(45, 48), False)
        if kind == "hypodiploid":
            return (True, self.rng.randint(2, 4), self.rng.randint(30, 39), False)
        return (True, self.rng.randint(1, 2), 46, True)

    def age_salvage_ecog(self):
        self.split("age", ">=55", "older", dead_value=False)
        self.split("salvage_phase", ">=2", "later_salvage", dead_value=True)
        self.split("ecog", ">=2", "poor_ps", dead_value=False)
        older = [p for p in self.p if p["older"]]
        younger = [p for p in self.p if not p["older"]]
        over_65 = int(printed("table1:Age > 65|>65")[0])
        median_age = int(printed("median:age_years")[0])
        low_age, high_age = (int(x) for x in printed("median:age_years")[1:])
        # Younger: 19-54 with the 25th and 26th of all 50 ages at the median.
        n_young = len(younger)
        at_or_below = 26  # the 25th and 26th are the median
        young = [low_age] + sorted(self.rng.choices(range(low_age + 1, median_age), k=23))
        young += [median_age, median_age]
        young += sorted(self.rng.choices(range(median_age + 1, 55), k=n_young - at_or_below))
        old = sorted(self.rng.choices(range(55, 65), k=len(older) - over_65))
        old += sorted(self.rng.sample(range(66, high_age), over_65 - 1)) + [high_age]
        self.rng.shuffle(young)
        self.rng.shuffle(old)
        for p, a in zip(younger, young, strict=True):
            p["age"] = a
        for p, a in zip(older, old, strict=True):
            p["age"] = a
        second = int(printed("table1:Salvage treatment phase|Second")[0])
        later = [p for p in self.p if p["later_salvage"]]
        for i, p in enumerate(self.rng.sample(later, len(later))):
            p["salvage"] = 2 if i < second else 3
        for p in self.p:
            p.setdefault("salvage", 1)
            p["prior_lines"] = {1: 1, 2: 2, 3: self.rng.choice([3, 3, 4])}[p["salvage"]]
            p["ecog"] = (
                self.rng.choice([2, 2, 2, 3]) if p["poor_ps"] else self.rng.choice([0, 1, 1])
            )
        top = [p for p in self.p if p["salvage"] == 3]
        self.rng.choice(top)["prior_lines"] = 4  # the range's 4

    def transplant_and_diagnosis(self):
        self.split("prior_allo_sct", "yes", "prior_sct", dead_value=True)
        self.split("time_from_diagnosis", ">=12 months", "late", dead_value=True)
        low, high = printed("median:months_diagnosis_to_start")[1:]
        median = printed("median:months_diagnosis_to_start")[0]
        late = [p for p in self.p if p["late"]]
        early = [p for p in self.p if not p["late"]]
        # The shortest (0.9 months): primary refractory, first salvage, no prior transplant.
        first = self.rng.choice([p for p in early if not p["prior_sct"] and p["salvage"] == 1])
        first["dx_days"] = round(low * M)
        for p in early:
            if p is first:
                continue
            lo = 7.0 if p["prior_sct"] else 2.0
            p["dx_days"] = round(self.rng.uniform(lo, 11.8) * M)
        # Late: the two smallest above 12 months sit at the median (25th and 26th of 50).
        self.rng.shuffle(late)
        late[0]["dx_days"] = round(12.4 * M)
        late[1]["dx_days"] = late[2]["dx_days"] = round(median * M)
        late[3]["dx_days"] = round(high * M)
        for p in late[4:]:
            p["dx_days"] = round(math.exp(self.rng.uniform(math.log(14), math.log(90))) * M)
        for p in self.p:
            if p["prior_sct"]:
                window = p["dx_days"]
                p["prior_sct_days_before"] = self.rng.randint(60, max(61, window - 120))

    def dexamethasone(self):
        """Dexamethasone before day 1 (prephase): Table 2's > 80 mg counts, CRS by dose as the
        Toxicity paragraph (P = 1.000, no severe CRS after a high dose)."""
        self.split(
            "dexamethasone",
            ">80 mg",
            "high_dex",
            eligible=lambda p: p["relapse_site"] != "extramedullary",
            dead_value=False,
        )
        for p in self.p:
            prephase = p["high_dex"] or ((p["blasts"] or 0) >= 50 and self.rng.random() < 0.6)
            if p["high_dex"]:
                p["dex_mg"] = float(self.rng.choice([100, 120, 160, 200]))
                if (p["blasts"] or 0) < 50:
                    p["pb"] = max(p["pb"], self.rng.randint(15000, 40000))
            elif prephase:
                p["dex_mg"] = float(self.rng.choice([20, 40, 60, 80]))
            else:
                p["dex_mg"] = 0.0
            p["prephase"] = self.rng.choice(PREPHASE_WITH_DEX) if p["dex_mg"] else "none"

    # -- responses ------------------------------------------------------------------------------

    def responses(self):
        """The response at each assessment, and labs that derive it."""
        cri_twice = self.rng.choice(self.where(ty="R1"))  # CRi after cycle 1, CR after cycle 2
        cri_best = self.rng.choice(self.where(ty="R3b"))  # CRi after cycle 1: the one best CRi
        for p in self.p:
            ty = p["ty"]
            r1 = r2 = None
            if ty in ("R1", "R2", "R3a", "R3b"):
                r1 = rules.CRI if p is cri_twice or p is cri_best else rules.CR
            elif ty in ("R4", "N1", "N2"):
                r1 = rules.PROGRESSIVE if p["pd_a1"] else rules.NO_RESPONSE
            if ty in ("R1", "R4"):
                r2 = rules.CR
            elif ty in ("R2", "N3"):
                r2 = rules.PROGRESSIVE
            elif ty == "N1":
                progressed = p["prog"] is not None and p["prog"] < p["a2"]
                can = p["emd"] or (p["blasts"] is not None and p["blasts"] <= 80)
                r2 = rules.PROGRESSIVE if progressed and can else rules.NO_RESPONSE
            p["r1"], p["r2"] = r1, r2
            p["labs1"] = self.labs(p, r1) if r1 else None
            p["labs2"] = self.labs(p, r2) if r2 else None

    def labs(self, p, response):
        rng, baseline = self.rng, p["blasts"]
        emd = rules.EMD_NONE
        if p["emd"]:
            emd = {
                rules.CR: rules.EMD_RESOLVED,
                rules.CRI: rules.EMD_RESOLVED,
                rules.NO_RESPONSE: rules.EMD_PERSISTENT,
                rules.PROGRESSIVE: rules.EMD_PROGRESSIVE,
            }[response]
        mrd = "not_done"
        if response in (rules.CR, rules.CRI):
            blasts = round(rng.uniform(0.2, 3.8), 1)
            if response == rules.CR:
                anc, plt = round(rng.uniform(1.2, 4.5), 2), round(rng.uniform(105, 320), 1)
                mrd = "negative" if rng.random() < 0.5 else "positive"
            else:
                anc, plt = round(rng.uniform(0.3, 0.95), 2), round(rng.uniform(25, 95), 1)
        else:
            anc, plt = round(rng.uniform(0.2, 3.5), 2), round(rng.uniform(8, 160), 1)
            if p["relapse_site"] == "extramedullary":
                blasts = round(rng.uniform(0.5, 3.9), 1)  # the marrow stays clear
            elif response == rules.PROGRESSIVE and emd == rules.EMD_NONE:
                blasts = round(min(100.0, max(5.0, baseline * 1.25) + rng.uniform(0.5, 15)), 1)
                blasts = min(blasts, 100.0)
            elif baseline is None:
                blasts = round(rng.uniform(20, 70), 1)
            else:
                top = min(100.0, max(5.1, baseline * 1.2))
                blasts = round(rng.uniform(max(5.0, min(top - 1, baseline * 0.4)), top), 1)
        got = rules.derive_response(blasts, anc, plt, emd, baseline)
        if got != response:
            raise RuntimeError(f"patient {p['i']}: labs give {got}, wanted {response}")
        return dict(blasts=blasts, anc=anc, plt=plt, emd=emd, mrd=mrd, response=response)

    # -- adverse events -------------------------------------------------------------------------

    def event(self, p, term, grade, day=None, cycle=None, **extra):
        """An adverse event of patient p on `day` (from day 0) in `cycle`."""
        if grade not in ctcae.get(term).grades:
            raise RuntimeError(f"{term} has no grade {grade} in CTCAE v4.03")
        if cycle is None:
            two = p["ty"] in CYCLE2_PATHS and self.rng.random() < 0.3
            cycle = 2 if two else 1
        if day is None:
            first, last = (1, C1_END - 1) if cycle == 1 else (C2_START + 1, C2_END - 1)
            if p["ty"] == "D":
                last = p["death"] - 2
            day = self.rng.randint(first, last)
        p["events"].append(dict(term=term, grade=grade, day=day, cycle=cycle, **extra))

    def band_patients(self, row, pool, exclude=()):
        """{grade band: patients} with the printed counts of a Table 3 row."""
        chosen, taken = {}, set(map(id, exclude))
        for band in ("grade_5", "grade_4", "grade_3", "grade_1_2"):
            n = int(printed(f"table3:{row}|{band}")[0])
            free = [p for p in pool if id(p) not in taken]
            chosen[band] = self.pick(free, n, f"{row} {band}")
            taken |= set(map(id, chosen[band]))
        return chosen

    def simple_row(self, row, term, pool=None, cycle=None, day=None):
        pool = self.p if pool is None else pool
        bands = self.band_patients(row, pool)
        grades = ctcae.get(term).grades
        for band, patients in bands.items():
            for p in patients:
                if band == "grade_1_2":
                    grade = self.rng.choice([g for g in (1, 2) if g in grades])
                else:
                    grade = int(band[-1])
                self.event(p, term, grade, day=day, cycle=cycle)
        return bands

    def adverse_events(self):
        dead = self.p[0]
        # Haematology.
        neutropenia = self.simple_row("Neutropenia", "Neutrophil count decreased")
        self.simple_row("Anemia", "Anemia")
        self.simple_row("Thrombocytopenia", "Platelet count decreased")
        severe_neutropenia = neutropenia["grade_3"] + neutropenia["grade_4"]
        fn = {
            band: int(printed(f"table3:Febrile neutropenia|{band}")[0])
            for band in ("grade_3", "grade_4")
        }
        fn_patients = self.pick(severe_neutropenia, sum(fn.values()), "febrile neutropenia")
        for j, p in enumerate(fn_patients):
            self.event(p, "Febrile neutropenia", 3 if j < fn["grade_3"] else 4)
        # The paper's impossible 'grade 1-2 febrile neutropenia': fever in neutropenic patients.
        n_fever = int(printed("table3:Febrile neutropenia|grade_1_2")[0])
        any_neutropenia = [p for band in neutropenia.values() for p in band]
        fever = [p for p in any_neutropenia if p not in fn_patients]
        for p in self.pick(fever, n_fever, "fever"):
            self.event(p, "Fever", self.rng.choice([1, 2]), paper_row="Febrile neutropenia 1-2")
        # Infections: the cycle-1 death (grade 5 pneumonia), one sepsis, the rest.
        self.event(dead, "Lung infection", 5, day=max(1, dead["death"] - 5), cycle=1, fatal=True)
        bands = self.band_patients("Infection", [p for p in self.p if p is not dead], [])
        assert int(printed("table3:Infection|grade_5")[0]) == 1
        for p in bands["grade_4"]:
            self.event(p, "Sepsis", 4)
        for p in bands["grade_3"]:
            term = self.rng.choice(
                ["Lung infection", "Catheter related infection", "Urinary tract infection",
                 "Device related infection"]
            )  # fmt: skip
            self.event(p, term, 3)
        for p in bands["grade_1_2"]:
            term = self.rng.choice(
                ["Upper respiratory infection", "Lung infection", "Urinary tract infection",
                 "Skin infection", "Catheter related infection", "Enterocolitis infectious"]
            )  # fmt: skip
            grade = self.rng.choice([1, 2]) if term == "Enterocolitis infectious" else 2
            self.event(p, term, grade)
        self.cytokine_release()
        self.neurologic()
        # The rest of Table 3, one term each (the CTCAE map's choice).
        for row, term in (
            ("Rash", "Rash maculo-papular"),
            ("Nausea", "Nausea"),
            ("Jaundice", "Blood bilirubin increased"),
            ("Hiccups", "Hiccups"),
        ):
            self.simple_row(row, term, pool=[p for p in self.p if p is not dead])
        tls_pool = [p for p in self.p if (p["blasts"] or 0) >= 80]
        self.simple_row("Tumor lysis syndrome", "Tumor lysis syndrome", tls_pool, 1, day=2)
        cardio = self.band_patients("Cardiovascular events", [p for p in self.p if p is not dead])
        for p in cardio["grade_1_2"]:
            term = self.rng.choice(["Sinus tachycardia", "Hypotension"])
            self.event(p, term, self.rng.choice([1, 2]))

    def cytokine_release(self):
        """CRS in the printed numbers; grade 3 only without a high dexamethasone dose (and the
        cycle interrupted); among those given > 80 mg, as many as gives the printed P."""
        n_high_dex = sum(1 for p in self.p if p["high_dex"])
        n_crs = int(printed("table3:Cytokine release syndrome|any")[0])
        target = printed_p("text:crs_by_dexamethasone_p")
        k = next(
            k
            for k in range(n_crs + 1)
            if round(
                tables.fisher_exact_two_sided(
                    k, n_high_dex - k, n_crs - k, 50 - n_high_dex - n_crs + k
                ),
                3,
            )
            == target
        )
        severe = int(printed("table3:Cytokine release syndrome|grade_3")[0])
        dead = self.p[0]
        low = [p for p in self.p if not p["high_dex"] and p is not dead]
        high = [p for p in self.p if p["high_dex"]]
        grade3 = self.pick(low, severe, "severe CRS")
        mild = self.pick([p for p in low if p not in grade3], n_crs - severe - k, "CRS")
        mild += self.pick(high, k, "CRS after a high dexamethasone dose")
        for p in grade3:
            self.event(p, "Cytokine release syndrome", 3, day=self.rng.randint(1, 3), cycle=1,
                       action="interrupted")  # fmt: skip
            p["c1_interrupted"] = 3
        for p in mild:
            self.event(p, "Cytokine release syndrome", self.rng.choice([1, 1, 2]),
                       day=self.rng.randint(1, 3), cycle=1)  # fmt: skip

    def neurologic(self):
        """The Toxicity paragraph: 18 patients with neurologic events, 2 of them grade 3-4 (the
        CNS responder stopped on the day cycle 2 was due; a grade 4 in cycle 2, recovered, then
        transplanted); of the 4 with CNS disease, 2 had neurologic events (grades 1 and 3)."""
        cns_patient = self.where(ty="R3a")[0]
        for term in ("Confusion", "Dysphasia", "Depressed level of consciousness"):
            self.event(cns_patient, term, 3, day=NEUROTOX_DAY, cycle=1, action="discontinued",
                       outcome="not_recovered")  # fmt: skip
        grade4 = self.rng.choice([p for p in self.p if p["ty"] == "R1" and p["sct"] is not None])
        day = self.rng.randint(C2_START + 3, C2_START + 12)
        for term, grade in (("Depressed level of consciousness", 4), ("Encephalopathy", 3),
                            ("Somnolence", 3)):  # fmt: skip
            self.event(grade4, term, grade, day=day, cycle=2, action="interrupted")
        grade4["c2_interrupted"] = 7
        cns_pd = [p for p in self.p if p["cns"] and p is not cns_patient]
        grade1_cns = self.rng.choice(cns_pd)
        rows = {  # Table 3 row -> CTCAE term
            "Dizziness": "Dizziness",
            "Somnolence": "Somnolence",
            "Tremor": "Tremor",
            "Altered state of consciousness": "Depressed level of consciousness",
            "Confusion": "Confusion",
            "Ataxia": "Ataxia",
        }
        slots = []
        for row, term in rows.items():
            slots += [term] * int(printed(f"table3:{row}|grade_1_2")[0])
        n_patients = int(printed("text:neurologic_any")[0]) - 2
        pool = [p for p in self.p if not p["cns"] and p["ty"] != "D" and p is not grade4]
        patients = [grade1_cns] + self.pick(pool, n_patients - 1, "neurologic events")
        self.rng.shuffle(slots)
        slots.remove("Tremor")
        given = {id(grade1_cns): {"Tremor"}}
        self.event(grade1_cns, "Tremor", 1)
        for p in patients[1:]:
            term = next(t for t in slots)
            slots.remove(term)
            given[id(p)] = {term}
        for term in slots:
            free = [p for p in patients[1:] if term not in given[id(p)]]
            given[id(self.rng.choice(free))].add(term)
        for p in patients[1:]:
            for term in sorted(given[id(p)]):
                self.event(p, term, self.rng.choice([1, 1, 2]))

    # -- after blinatumomab, and the calendar ---------------------------------------------------

    def subsequent_therapy(self):
        n = int(printed("text:salvage_chemo_non_responders")[0])
        for p in self.p:
            failure = p["prog"] or p["a2"] or p["a1"]
            p["failure"] = failure
            p["end"] = p["death"] if p["death"] is not None else p["last"]
        pool = [
            p for p in self.p if p["evaluable"] and not p["resp"] and p["end"] - p["failure"] >= 10
        ]
        for p in self.pick(pool, n, "salvage chemotherapy"):
            p["therapy_day"] = p["failure"] + self.rng.randint(
                5, min(14, p["end"] - p["failure"] - 1)
            )
            p["regimen"] = self.rng.choice(SALVAGE_REGIMENS)

    def dates(self):
        order = list(self.p)
        self.rng.shuffle(order)
        codes = [code for code, n in SITES for _ in range(n)]
        for p, code in zip(order, codes, strict=True):
            p["site"] = code
        for p in self.p:
            end = p["end"]
            latest = min(ENROL_LAST, CUTOFF - timedelta(days=end))
            if p["death"] is None and ENROL_FIRST <= CUTOFF - timedelta(days=end) <= ENROL_LAST:
                start = CUTOFF - timedelta(days=end)  # followed up to the data cut-off
            else:
                span = (latest - ENROL_FIRST).days
                start = ENROL_FIRST + timedelta(days=self.rng.randint(0, span))
            p["start"] = start
            age = p["age"]
            birth = date(start.year - age - 1, start.month, min(start.day, 28))
            birth += timedelta(days=self.rng.randint(1, 330))
            while rules.age_in_years(birth, start) != age:
                birth += timedelta(days=1 if rules.age_in_years(birth, start) > age else -1)
            p["birth"] = birth
            p["diagnosis"] = start - timedelta(days=p["dx_days"])
            if p["prior_sct"]:
                p["prior_sct_date"] = start - timedelta(days=p["prior_sct_days_before"])

    # -- files ----------------------------------------------------------------------------------

    def story(self, p) -> str:
        what = {
            "D": "died of pneumonia during cycle 1, before any response assessment",
            "R1": "CR/CRi after cycle 1, cycle 2, still in remission",
            "R2": "CR/CRi after cycle 1, cycle 2, progressive disease after it",
            "R3a": "CNS disease; CR after cycle 1, grade 3 neurotoxicity when cycle 2 was due, "
            "no further treatment",
            "R3b": "CR/CRi after cycle 1, then allogeneic SCT without cycle 2",
            "R4": "persistent disease after cycle 1, cycle 2, CR after it",
            "N1": "persistent disease after cycle 1, cycle 2, no response",
            "N2": "persistent disease after cycle 1, no cycle 2",
            "N3": "no assessment after cycle 1, cycle 2, progressive disease after it",
        }[p["ty"]]
        if p["cns"] and p["ty"] != "R3a":
            what = "CNS disease; " + what
        if p["sct"] is not None:
            what += "; allogeneic SCT"
        if p.get("therapy_day"):
            what += "; salvage chemotherapy"
        if p["prog"] is not None and p["resp"] and p["ty"] != "R2":
            what += "; relapse"
        what += "; died" if p["death"] is not None else "; alive at last contact"
        return what

    def patient_rows(self) -> list[dict]:
        rows = []
        for p in self.p:
            start = p["start"]

            def day(n, start=start):
                return "" if n is None else (start + timedelta(days=n)).isoformat()

            dead = p["death"] is not None
            c1_end = day(p["death"]) if p["ty"] == "D" else day(C1_END)
            second = p["ty"] in CYCLE2_PATHS
            row = {
                "twin_id": "",
                "institution": p["site"],
                "sex": "female" if p["female"] else "male",
                "birth_date": p["birth"].isoformat(),
                "diagnosis_date": p["diagnosis"].isoformat(),
                "blinatumomab_start_date": start.isoformat(),
                "ecog": p["ecog"],
                "salvage_phase": p["salvage"],
                "prior_therapies_n": p["prior_lines"],
                "prior_allo_sct_date": p["prior_sct_date"].isoformat() if p["prior_sct"] else "",
                "relapse_site": p["relapse_site"],
                "emd_sites": ";".join(p["emd_sites"]),
                "marrow_blasts_pct": "" if p["blasts"] is None else f"{p['blasts']:.1f}",
                "pb_blasts_per_ul": "" if p["relapse_site"] == "extramedullary" else p["pb"],
                "prephase_regimen": p["prephase"],
                "dexamethasone_mg_before": f"{p['dex_mg']:.1f}",
            }
            for when, (done, n_abn, modal, kmt2a) in (
                ("dx", p["cyto_dx"]),
                ("start", p["cyto_start"]),
            ):
                row[f"cyto_{when}_done"] = "yes" if done else "no"
                row[f"cyto_{when}_abnormalities_n"] = "" if n_abn is None else n_abn
                row[f"cyto_{when}_modal_number"] = "" if modal is None else modal
                row[f"cyto_{when}_kmt2a"] = "yes" if kmt2a else "no"
            c1_days = p.get("c1_interrupted", 0)
            row.update(
                c1_end=c1_end,
                c1_outcome="discontinued" if p["ty"] == "D" else (
                    "interrupted" if c1_days else "completed"),
                c1_interruption_days=c1_days or "",
                c1_interruption_reason="Cytokine release syndrome grade 3" if c1_days else "",
                c1_discontinuation_reason="death" if p["ty"] == "D" else "",
            )  # fmt: skip
            c2_days = p.get("c2_interrupted", 0)
            row.update(
                c2_start=day(C2_START) if second else "",
                c2_end=day(C2_END) if second else "",
                c2_outcome=("interrupted" if c2_days else "completed") if second else "",
                c2_interruption_days=c2_days or "",
                c2_interruption_reason="Depressed level of consciousness grade 4"
                if c2_days
                else "",
                c2_discontinuation_reason="",
            )
            for n, labs, when in ((1, p["labs1"], p["a1"]), (2, p["labs2"], p["a2"])):
                labs = labs or {}
                row[f"a{n}_date"] = day(when) if labs else ""
                row[f"a{n}_marrow_blasts_pct"] = labs.get("blasts", "")
                row[f"a{n}_anc_10e9_per_l"] = labs.get("anc", "")
                row[f"a{n}_platelets_10e9_per_l"] = labs.get("plt", "")
                row[f"a{n}_emd_status"] = labs.get("emd", "")
                row[f"a{n}_mrd_status"] = labs.get("mrd", "")
                row[f"a{n}_response"] = labs.get("response", "")
            row.update(
                sct_date=day(p["sct"]),
                sct_donor=self.rng.choice(DONORS) if p["sct"] is not None else "",
                therapy_category="salvage_chemotherapy" if p.get("therapy_day") else "",
                therapy_regimen=p.get("regimen", ""),
                therapy_start=day(p.get("therapy_day")),
                last_contact_date=day(p["end"]),
                vital_status="dead" if dead else "alive",
                relapse_or_progression_date=day(p["prog"]),
                death_date=day(p["death"]),
                death_cause=(
                    "infection" if p["ty"] == "D" else "disease" if p["prog"] is not None
                    else "transplant_related"
                ) if dead else "",
                story=self.story(p),
            )  # fmt: skip
            rows.append((p, row))
        rows.sort(key=lambda pr: (pr[1]["institution"], pr[1]["blinatumomab_start_date"]))
        for n, (p, row) in enumerate(rows, start=1):
            row["twin_id"] = p["twin_id"] = f"TWIN-{n:02d}"
        return [row for _, row in rows]

    def event_rows(self) -> list[dict]:
        rows = []
        for p in sorted(self.p, key=lambda p: p["twin_id"]):
            for e in sorted(p["events"], key=lambda e: (e["day"], e["term"])):
                onset = p["start"] + timedelta(days=e["day"])
                fatal = e.get("fatal", False)
                outcome = "fatal" if fatal else e.get("outcome", "recovered")
                if fatal:
                    resolution = p["start"] + timedelta(days=p["death"])
                elif outcome == "not_recovered":
                    resolution = None
                else:
                    last = p["start"] + timedelta(days=p["end"])
                    resolution = min(onset + timedelta(days=self.rng.randint(2, 14)), last)
                rows.append(
                    {
                        "twin_id": p["twin_id"],
                        "cycle": e["cycle"],
                        "ctcae_term": e["term"],
                        "grade": e["grade"],
                        "onset_date": onset.isoformat(),
                        "resolution_date": resolution.isoformat() if resolution else "",
                        "serious": "yes" if e["grade"] >= 3 else "no",
                        "attribution": self.attribution(e["term"]),
                        "action_taken": e.get("action", "discontinued" if fatal else "none"),
                        "outcome": outcome,
                        "paper_row": e.get("paper_row", ""),
                    }
                )
        return rows

    def attribution(self, term) -> str:
        if term in ("Cytokine release syndrome",) or ctcae.get(term).soc.startswith("Nervous"):
            return "probable"
        if ctcae.get(term).soc == "Infections and infestations":
            return "unlikely"
        return self.rng.choice(["possible", "possible", "probable", "unlikely"])


def write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def check_with_r(cohort: Cohort) -> None:
    """Survival medians and log-rank P values of the built cohort, by R's survival package."""
    frame = pd.DataFrame(
        [
            dict(
                zip(
                    ["efs", "efs_event", "cause", "os", "os_event"],
                    outcome(p),
                    strict=True,
                ),
                responder=int(p["resp"]),
                sct=int(p["sct"] is not None),
            )
            for p in cohort.p
        ]
    )
    with tempfile.TemporaryDirectory() as tmp:
        data, code = Path(tmp) / "d.csv", ROOT / "scripts/paper_twin_check.R"
        frame.to_csv(data, index=False)
        result = subprocess.run(
            ["Rscript", str(code), str(data)], capture_output=True, text=True, check=False
        )
    print("R's survival package (months; groups no, yes):")
    print(result.stdout or result.stderr)


def build(state) -> None:
    figures = survival_figures(state)
    if cost(figures) > 0:
        raise SystemExit(f"the survival times miss the printed numbers: {figures}")
    for seed in range(20180926, 20180926 + 200):
        try:
            cohort = Cohort(json.loads(json.dumps(state)), seed).run()
            break
        except RuntimeError as failed:
            print(f"seed {seed}: {failed}")
    else:
        raise SystemExit("no seed gave a cohort")
    patients = cohort.patient_rows()
    write_csv(OUT_PATIENTS, patients)
    write_csv(OUT_EVENTS, cohort.event_rows())
    print(f"seed {seed}: wrote {OUT_PATIENTS.name} ({len(patients)}) and {OUT_EVENTS.name}")
    check_with_r(cohort)


def repair(state):
    """Make a saved or hand-edited state valid under the rules above, moving as little as
    possible (a transplant to just after the cycle-2 assessment, a progression to the first
    assessment, last contact to the last record)."""
    for p in state:
        if p["ty"] in ("R1", "R4") and p["sct"] is not None and p["sct"] < p["a2"] + 7:
            p["sct"] = p["a2"] + 7
        if p["ty"] in ("N1", "N2") and p["prog"] is not None and p["prog"] < p["a1"]:
            p["prog"] = p["a1"]
        if p["sct"] is not None and p["prog"] is not None and p["sct"] >= p["prog"]:
            p["prog"] = p["sct"] + 14
        if p["death"] is None:
            p["last"] = max(p["last"], records_end(p))
        elif p["prog"] is not None:
            p["death"] = max(p["death"], p["prog"] + 7, records_end(p) + 5)
    return state


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--solve", action="store_true", help="search survival times")
    parser.add_argument("--survival", type=Path, default=SURVIVAL_JSON)
    parser.add_argument("--iterations", type=int, default=80000)
    parser.add_argument("--seed", type=int, default=2018)
    parser.add_argument("--temperature", type=float, default=0.5)
    args = parser.parse_args()
    start = repair(json.loads(args.survival.read_text())) if args.survival.exists() else None
    if args.solve:
        state, c = anneal(args.seed, args.iterations, start, args.temperature)
        print(f"best cost {c:.4f}")
        args.survival.parent.mkdir(parents=True, exist_ok=True)
        args.survival.write_text(json.dumps(state, indent=0))
        print(json.dumps(survival_figures(state), default=float, indent=1))
        return 0 if c == 0 else 1
    build(start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
