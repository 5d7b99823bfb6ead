"""A run's figures are drawn in worker processes when it can fork, and here when it cannot; the
files are the same either way."""

from concurrent.futures.process import BrokenProcessPool

import pytest

from analysis import outputs
from tests.analysis.datagen import make_dataset

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EXPECTED = [
    f"km_{endpoint}_{grouping}.{ext}"
    for endpoint in ("efs", "os")
    for grouping in ("overall", "responder", "allo_sct_after")
    for ext in ("png", "svg")
]


@pytest.fixture(scope="module")
def dataset():
    return make_dataset(80, 7)


def written(out):
    return sorted(p.name for p in out.iterdir())


def test_figures_drawn_in_two_worker_processes(dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(outputs.os, "sched_getaffinity", lambda pid: {0, 1})
    pools = []
    real_pool = outputs.ProcessPoolExecutor

    def counting_pool(*args, **kwargs):
        pools.append(args[0])
        return real_pool(*args, **kwargs)

    monkeypatch.setattr(outputs, "ProcessPoolExecutor", counting_pool)
    files = outputs.draw_figures(dataset, tmp_path)
    assert pools == [2]
    assert files == EXPECTED and written(tmp_path) == sorted(EXPECTED)
    assert (tmp_path / "km_os_responder.png").read_bytes()[:8] == PNG_SIGNATURE
    assert "Overall survival by responder" in (tmp_path / "km_os_responder.svg").read_text()


@pytest.mark.parametrize(
    "refusal",
    [
        AssertionError("daemonic processes are not allowed to have children"),
        BrokenProcessPool("a worker died"),
        OSError("fork failed"),
    ],
)
def test_without_worker_processes_the_figures_are_drawn_here(
    dataset, tmp_path, monkeypatch, refusal
):
    monkeypatch.setattr(outputs.os, "sched_getaffinity", lambda pid: {0, 1})

    def refusing_pool(*args, **kwargs):
        raise refusal

    monkeypatch.setattr(outputs, "ProcessPoolExecutor", refusing_pool)
    files = outputs.draw_figures(dataset, tmp_path)
    assert files == EXPECTED and written(tmp_path) == sorted(EXPECTED)


def test_one_cpu_draws_here_without_a_pool(dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(outputs.os, "sched_getaffinity", lambda pid: {0})
    monkeypatch.setattr(outputs, "ProcessPoolExecutor", None)  # would fail if called
    assert outputs.draw_figures(dataset, tmp_path) == EXPECTED
    assert written(tmp_path) == sorted(EXPECTED)


def test_a_figure_error_is_not_hidden(dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(outputs.os, "sched_getaffinity", lambda pid: {0, 1})
    broken = dataset.drop(columns=["os_months"])
    with pytest.raises(KeyError, match="os_months"):
        outputs.draw_figures(broken, tmp_path)


def _draw_in_a_pool_process(queue, out):
    drawing = outputs.Drawing(outputs.paper_figure_specs(make_dataset(80, 7)), out)
    where = "worker processes" if drawing.pool is not None else "here"
    queue.put((where, drawing.wait()))


def test_a_celery_pool_process_draws_in_worker_processes_too(tmp_path, monkeypatch):
    """Celery's prefork pool runs tasks in daemonic billiard processes, which multiprocessing
    would refuse children: the run would silently lose the parallel drawing."""
    import billiard

    monkeypatch.setattr(outputs.os, "sched_getaffinity", lambda pid: {0, 1})
    queue = billiard.Queue()
    process = billiard.Process(target=_draw_in_a_pool_process, args=(queue, tmp_path), daemon=True)
    process.start()
    where, files = queue.get(timeout=120)
    process.join(30)
    assert (where, process.exitcode) == ("worker processes", 0)
    assert files == EXPECTED and written(tmp_path) == sorted(EXPECTED)
