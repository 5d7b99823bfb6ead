"""The steps of an analysis run as its page shows them while it runs (no numerical imports: the
web process and the Celery worker load this at start-up, analysis.outputs only on a run)."""

# (percentage reached, what the run is doing), in order.
PROGRESS_STEPS = {
    "read": (0, "Reading the registry"),
    "dataset": (10, "Writing the analysis dataset"),
    "tables": (30, "Computing tables and survival models"),
    "charts": (55, "Drawing Figure 1, the forest plot and the swimmer plot"),
    "km": (65, "Drawing the Kaplan-Meier figures"),
    "report": (80, "Writing the report"),
    "docx": (90, "Writing the Word document"),
    "done": (100, "Done"),
}
