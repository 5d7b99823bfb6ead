"""Dates as ISO YYYY-MM-DD in Korean, as in English: one way of writing a date across the
registry's pages, forms, exports and the CRFs' date inputs, stated once in config/formats/en."""

from config.formats.en.formats import *  # noqa: F403
