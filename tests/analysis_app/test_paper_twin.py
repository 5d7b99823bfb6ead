"""The default demo registry is the paper's twin: its analysis prints the paper's numbers.

seed_demo with its defaults loads the synthetic reconstruction of the paper's 50 patients
(registry/data/paper_twin*.csv); run_analysis on it writes reproduction.csv, in which every
printed number of analysis/data/paper_printed.csv agrees with the registry's, except the ones
where the paper contradicts itself (or that the registry cannot hold), each with its note.
"""

import json
import subprocess

import pandas as pd
import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils.html import escape

from analysis.models import AnalysisRun
from analysis.outputs import default_parameters
from analysis.reproduction import printed_numbers
from analysis.runs import execute
from registry import paper_twin
from registry.management.commands.seed_demo import DEMO_PASSWORD
from registry.models import Institution, Membership, Patient
from tests import factories as f
from tests.analysis.datagen import require_rscript

pytestmark = pytest.mark.django_db

# The rows that cannot agree, with the registry's value: each is explained by its note.
DIFFERENCES = {
    # The paper truncates: 35/43 = 81.4%, 2/11 = 18.2%.
    "BM blast ≥ 50%, n (%)": "35 (81.4)",
    "Persistent disease after cycle 1, cycle 2: CR after it, n (%)": "2 (18.2%)",
    # The after-cycle-1 sentence adds up to 25 responders, not the 22 printed everywhere else.
    "CR/CRi after cycle 1, n (% of 49)": "20 (40.8%)",
    "CR after cycle 1": "18",
    "Persistent disease after cycle 1": "26",
    # CTCAE v4.03 has no febrile neutropenia below grade 3.
    "Febrile neutropenia: Any grade, n (%)": "17 (34%)",
    "Febrile neutropenia: Grade 1–2, n (%)": "0 (0%)",
}
NOT_COMPARABLE = {
    "Salvage chemotherapy: response assessed, n; remission, n (%)",
    "Median EFS, 95% CI ('range'), months",
    "Median OS, 95% CI ('range'), months",
}


@pytest.fixture
def twin_run(settings, tmp_path):
    settings.DEBUG = True
    call_command("seed_demo", stdout=open("/dev/null", "w"))
    settings.DEBUG = False
    call_command("run_analysis", "--out", str(tmp_path), stdout=open("/dev/null", "w"))
    return tmp_path


def test_default_demo_reproduces_every_number_the_paper_prints(twin_run):
    rows = pd.read_csv(twin_run / "reproduction.csv", dtype=str, keep_default_na=False)
    assert list(rows.columns) == [
        "source",
        "item",
        "printed",
        "recomputed",
        "agrees",
        "note",
        "location",
        "key",
    ]
    printed = pd.read_csv("analysis/data/paper_printed.csv", dtype=str, keep_default_na=False)
    assert len(rows) == len(printed) > 200
    differ = rows[rows["agrees"] == "no"].set_index("item")
    assert differ["recomputed"].to_dict() == DIFFERENCES
    assert (differ["note"] != "").all()
    assert set(rows.loc[rows["agrees"] == "n/a", "item"]) == NOT_COMPARABLE
    agree = rows[rows["agrees"] == "yes"]
    assert (agree["recomputed"] == agree["printed"]).all()
    counts = agree["source"].value_counts()
    assert (counts["Table 1"], counts["Table 2"], counts["Table 3"]) == (17, 45, 98)
    # The survival figures, the cycle-2 paths and the toxicity counts agree too.
    for key in (
        "km_median:os|responder|yes",
        "logrank:os|allo_sct_after",
        "text:followup_median",
        "flow:cr_cri_after_cycle1_pd_after_cycle2",
        "text:neurologic_grade_3_4",
        "text:crs_by_dexamethasone_p",
    ):
        assert key in set(agree["key"]), key


@pytest.mark.r_reference
def test_the_twin_survival_numbers_are_rs(twin_run, tmp_path):
    """R's survfit and survdiff on the run's analysis_dataset.csv give the printed medians,
    P values and the reverse Kaplan-Meier follow-up."""
    script = tmp_path / "check.R"
    script.write_text(
        """
suppressPackageStartupMessages(library(survival))
d <- read.csv(commandArgs(TRUE)[1])
m <- function(f) summary(f)$table[["median"]]
g <- function(f) unname(summary(f)$table[, "median"])
p <- function(t) pchisq(t$chisq, 1, lower.tail = FALSE)
out <- c(
  m(survfit(Surv(efs_months, efs_event) ~ 1, d)), m(survfit(Surv(os_months, os_event) ~ 1, d)),
  g(survfit(Surv(efs_months, efs_event) ~ responder, d)),
  g(survfit(Surv(os_months, os_event) ~ responder, d)),
  g(survfit(Surv(efs_months, efs_event) ~ allo_sct_after, d)),
  g(survfit(Surv(os_months, os_event) ~ allo_sct_after, d)),
  p(survdiff(Surv(efs_months, efs_event) ~ responder, d)),
  p(survdiff(Surv(os_months, os_event) ~ responder, d)),
  p(survdiff(Surv(efs_months, efs_event) ~ allo_sct_after, d)),
  p(survdiff(Surv(os_months, os_event) ~ allo_sct_after, d)),
  m(survfit(Surv(os_months, 1 - os_event) ~ 1, d)))
cat(format(out, digits = 15), sep = "\\n")
"""
    )
    result = subprocess.run(
        [require_rscript(), str(script), str(twin_run / "analysis_dataset.csv")],
        capture_output=True,
        text=True,
        check=True,
    )
    r = [float(x) for x in result.stdout.split()]
    medians = [round(x + 1e-9, 1) for x in r[:10]]
    printed = [
        printed_numbers(f"km_median:{endpoint}|{grouping}|{group}")[0]
        for endpoint, grouping, group in [
            ("efs", "overall", "all"),
            ("os", "overall", "all"),
            *[
                (endpoint, grouping, group)
                for grouping in ("responder", "allo_sct_after")
                for endpoint in ("efs", "os")
                for group in ("no", "yes")
            ],
        ]
    ]
    # In R's order: overall EFS, OS; EFS no/yes by response, OS no/yes; the same by SCT.
    assert medians == printed
    assert all(p < 0.001 for p in r[10:13])
    assert round(r[13], 3) == printed_numbers("logrank:os|allo_sct_after")[0]
    assert round(r[14], 1) == printed_numbers("text:followup_median")[0]
    reproduced = pd.read_csv(twin_run / "reproduction.csv", keep_default_na=False)
    followup = reproduced.set_index("key").loc["text:followup_median", "recomputed"]
    assert followup == f"{r[14]:.1f}"


def test_default_demo_is_the_twin_labelled_synthetic_everywhere(settings, client):
    settings.DEBUG = True
    call_command("seed_demo", stdout=open("/dev/null", "w"))
    assert Patient.objects.count() == 50
    assert set(Patient.objects.values_list("site_case_number", flat=True)) == {
        f"TWIN-{n:02d}" for n in range(1, 51)
    }
    assert all(s.name.endswith(paper_twin.SITE_SUFFIX) for s in Institution.objects.all())
    # The case list and a case page of the investigator.
    client.login(username="investigator", password=DEMO_PASSWORD)
    label = escape(paper_twin.LABEL)
    page = client.get(reverse("registry:case_list")).content.decode()
    assert label in page
    case = Patient.objects.filter(institution__code="KR01").first()
    assert label in client.get(reverse("registry:case", args=[case.pk])).content.decode()
    # The run: run.json, the report and the dashboard, with the side-by-side table.
    run = execute(AnalysisRun.objects.create(parameters=default_parameters()))
    meta = json.loads((run.output_dir / "run.json").read_text())
    assert meta["synthetic"] == paper_twin.LABEL
    assert "reproduction.csv" in meta["files"]
    report = (run.output_dir / "report.html").read_text()
    assert label in report and "✗ differs" in report
    assert DIFFERENCES["BM blast ≥ 50%, n (%)"] in report
    client.force_login(f.user("stat", role=Membership.STATISTICIAN))
    dashboard = client.get(reverse("analysis:dashboard")).content.decode()
    assert label in dashboard
    assert 'id="reproduction"' in dashboard and DIFFERENCES["CR after cycle 1"] in dashboard


def test_other_sizes_and_seeds_keep_the_generator_unlabelled(settings, client):
    settings.DEBUG = True
    call_command("seed_demo", patients=40, stdout=open("/dev/null", "w"))
    assert Patient.objects.count() == 40
    assert not Patient.objects.filter(site_case_number__startswith="TWIN-").exists()
    assert not any(s.name.endswith(paper_twin.SITE_SUFFIX) for s in Institution.objects.all())
    call_command("seed_demo", "--generated", stdout=open("/dev/null", "w"))
    assert Patient.objects.count() == 50
    assert not paper_twin.registry_holds_twin(Patient.objects.all())
    client.login(username="investigator", password=DEMO_PASSWORD)
    page = client.get(reverse("registry:case_list")).content.decode()
    assert escape(paper_twin.LABEL) not in page
    run = execute(AnalysisRun.objects.create(parameters=default_parameters()))
    assert json.loads((run.output_dir / "run.json").read_text())["synthetic"] == ""
