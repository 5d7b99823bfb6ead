"""Kaplan-Meier figures: what is drawn, and the files written."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text

from analysis.figures import (
    AT_RISK_GID,
    LOGRANK_GID,
    format_p,
    km_figure,
    save_figure,
)
from analysis.survival import logrank, numbers_at_risk

from .datagen import make_dataset

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def dataset():
    return make_dataset(120, 4)


def _texts(fig: Figure, gid_prefix: str) -> list[Text]:
    return [
        text
        for text in fig.findobj(Text)
        if text.get_gid() and text.get_gid().startswith(gid_prefix)
    ]


def _drawn_at_risk(fig: Figure) -> dict[str, dict[float, int]]:
    """{group label: {time: number drawn}} read back from the figure's text artists."""
    drawn: dict[str, dict[float, int]] = {}
    for text in _texts(fig, AT_RISK_GID):
        _, label, time = text.get_gid().split("|")
        drawn.setdefault(label, {})[float(time)] = int(text.get_text())
    return drawn


def test_grouped_figure_at_risk_numbers_equal_numbers_at_risk(dataset):
    times = [0, 3, 6, 9, 12]
    fig = km_figure(dataset, "os_months", "os_event", "responder", "OS", times)
    drawn = _drawn_at_risk(fig)
    assert set(drawn) == {"no", "yes"}
    for value, label in ((False, "no"), (True, "yes")):
        part = dataset[dataset["responder"] == value]
        expected = numbers_at_risk(part["os_months"], part["os_event"], times)
        assert drawn[label] == dict(zip(expected["time"], expected["n_risk"], strict=True))


def test_grouped_figure_shows_logrank_p(dataset):
    fig = km_figure(dataset, "efs_months", "efs_event", "allo_sct_after")
    (text,) = _texts(fig, LOGRANK_GID)
    p_value = logrank(dataset, "efs_months", "efs_event", "allo_sct_after").p_value
    assert text.get_text() == f"Log-rank P {format_p(p_value)}"


def test_curves_and_censor_marks(dataset):
    fig = km_figure(dataset, "os_months", "os_event", "responder")
    ax = fig.axes[0]
    curves = [line for line in ax.get_lines() if line.get_drawstyle() == "steps-post"]
    marks = [line for line in ax.get_lines() if line.get_marker() == "+"]
    assert len(curves) == len(marks) == 2
    censored = dataset.loc[dataset["os_event"] == 0, "os_months"].nunique()
    assert sum(len(line.get_xdata()) for line in marks) >= censored - 1
    for curve in curves:
        assert curve.get_ydata()[0] == 1.0 and np.all(np.diff(curve.get_ydata()) <= 0)


def test_ungrouped_figure_has_no_logrank_and_default_times(dataset):
    fig = km_figure(dataset, "os_months", "os_event", title="Overall survival")
    assert _texts(fig, LOGRANK_GID) == []
    drawn = _drawn_at_risk(fig)
    assert list(drawn) == ["All patients"]
    times = sorted(drawn["All patients"])
    assert times[0] == 0 and times[-1] <= dataset["os_months"].max()
    expected = numbers_at_risk(dataset["os_months"], dataset["os_event"], times)
    assert [drawn["All patients"][t] for t in times] == list(expected["n_risk"])
    assert fig.axes[0].get_title() == "Overall survival"


def test_no_pyplot_figures_leak(dataset):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    km_figure(dataset, "os_months", "os_event", "responder")
    assert plt.get_fignums() == before


def test_save_figure_writes_valid_png_and_svg(dataset, tmp_path):
    fig = km_figure(dataset, "os_months", "os_event", "allo_sct_after", "OS by allo SCT")
    png, svg = save_figure(fig, tmp_path / "figures" / "fig2.os_allo")
    assert png.name == "fig2.os_allo.png" and svg.name == "fig2.os_allo.svg"
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    root = ET.parse(svg).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert "OS by allo SCT" in svg.read_text()
