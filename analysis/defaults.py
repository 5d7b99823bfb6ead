"""Defaults of the run parameters that forms, the command and the statistics share.

Kept apart from analysis.beyond so that the run form and the management command can read them
without importing pandas, scipy and lifelines (which every web and Celery process would then load
at start-up).
"""

DEFAULT_LANDMARK_DAYS = 90
DEFAULT_REFERENCE_RATE = 0.25
