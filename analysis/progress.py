"""The steps of an analysis run as its page shows them while it runs (no numerical imports: the
web process and the Celery worker load this at start-up, analysis.outputs only on a run)."""

from django.utils.translation import gettext_noop

# (percentage reached, what the run is doing), in order; stored on the run in English, shown in
# the page's language (analysis.runs.progress_view).
PROGRESS_STEPS = {
    "read": (0, gettext_noop("Reading the registry")),
    "dataset": (10, gettext_noop("Writing the analysis dataset")),
    "tables": (30, gettext_noop("Computing tables and survival models")),
    "charts": (55, gettext_noop("Drawing Figure 1, the forest plot and the swimmer plot")),
    "km": (65, gettext_noop("Drawing the Kaplan-Meier figures")),
    "report": (80, gettext_noop("Writing the report")),
    "docx": (90, gettext_noop("Writing the Word document")),
    "done": (100, gettext_noop("Done")),
}
