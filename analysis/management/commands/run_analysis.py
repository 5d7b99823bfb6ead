"""`manage.py run_analysis --out DIR`: the dashboard's analysis, for scripts."""

import json
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from analysis.defaults import DEFAULT_LANDMARK_DAYS, DEFAULT_REFERENCE_RATE
from analysis.models import AnalysisRun
from analysis.outputs import default_parameters
from analysis.runs import execute


class Command(BaseCommand):
    help = "Run the paper's analyses on the registry and write tables, figures and report to DIR."
    # The system checks import every URLconf and view (0.5 s of a 50-patient run from a cold
    # interpreter, issue #19); `manage.py check` and every server start still run them.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--out", required=True, help="Output directory (created if missing).")
        parser.add_argument(
            "--test",
            choices=["fisher", "chi2"],
            default="fisher",
            help="Test for Table 2 (default: Fisher's exact, as printed).",
        )
        parser.add_argument("--age-cut", type=float, default=55)
        parser.add_argument("--diagnosis-cut-months", type=float, default=12)
        parser.add_argument("--blasts-cut-pct", type=float, default=50)
        parser.add_argument("--dexamethasone-cut-mg", type=float, default=80)
        parser.add_argument(
            "--landmark-days",
            type=int,
            default=DEFAULT_LANDMARK_DAYS,
            help="Landmark day for the landmark analysis (default: 90).",
        )
        parser.add_argument(
            "--language",
            choices=[code for code, _name in settings.LANGUAGES],
            default="en",
            help="Language of report.html and report.docx (default: en).",
        )
        parser.add_argument(
            "--reference-rate",
            type=float,
            default=DEFAULT_REFERENCE_RATE,
            help="Reference response rate for the one-sided binomial test (default: 0.25).",
        )

    def handle(self, *args, out, test, **options):
        parameters = default_parameters()
        parameters["test"] = test
        parameters["cuts"] = {
            "age_years": options["age_cut"],
            "months_from_diagnosis": options["diagnosis_cut_months"],
            "marrow_blasts_pct": options["blasts_cut_pct"],
            "dexamethasone_mg": options["dexamethasone_cut_mg"],
        }
        if options["landmark_days"] <= 0:
            raise CommandError("--landmark-days must be a positive number of days.")
        if not 0 < options["reference_rate"] < 1:
            raise CommandError("--reference-rate must be between 0 and 1 (e.g. 0.25).")
        parameters["landmark_days"] = options["landmark_days"]
        parameters["reference_rate"] = options["reference_rate"]
        run = AnalysisRun.objects.create(
            parameters=parameters,
            source="command line",
            output_path=str(Path(out).resolve()),
            language=options["language"],
        )
        steps = []

        def on_step(step):  # with -v 2: how long each step took (what a user waits for)
            # and this process's CPU time in it (the figure workers' is not included)
            now, cpu = time.perf_counter(), time.process_time()
            if steps and options["verbosity"] >= 2:
                self.stdout.write(
                    f"  {steps[-1][0]}: {now - steps[-1][1]:.2f} s (CPU {cpu - steps[-1][2]:.2f} s)"
                )
            steps.append((step, now, cpu))

        try:
            run = execute(run, on_step)
            on_step("done")
        except Exception as exc:
            raise CommandError(f"Analysis failed: {exc}") from exc
        meta = json.loads((run.output_dir / "run.json").read_text())
        self.stdout.write(
            f"Run {run.pk}: {run.n_patients} patients, snapshot {run.snapshot_hash[:12]}, "
            f"{len(meta['files'])} files in {out}"
        )
