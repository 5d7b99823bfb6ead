"""A run's figures are drawn in worker processes and this one when it can fork, and here alone when
it cannot; the files are the same either way."""

import os
import time
from concurrent.futures.process import BrokenProcessPool

import pandas as pd
import pytest
from threadpoolctl import threadpool_info

from analysis import outputs
from analysis.dataset import RegistrySnapshot
from tests.analysis.datagen import make_dataset

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EXPECTED = [
    f"km_{endpoint}_{grouping}.{ext}"
    for endpoint in ("efs", "os")
    for grouping in ("overall", "responder", "allo_sct_after")
    for ext in ("png", "svg")
]
STEMS = list(dict.fromkeys(name.rsplit(".", 1)[0] for name in EXPECTED))


@pytest.fixture(scope="module")
def dataset():
    return make_dataset(80, 7)


def written(out):
    return sorted(p.name for p in out.iterdir())


@pytest.mark.parametrize(("cpus", "workers"), [(2, 1), (4, 3), (16, 6)])
def test_one_worker_process_per_cpu_but_one(dataset, tmp_path, monkeypatch, cpus, workers):
    monkeypatch.setattr(outputs.os, "sched_getaffinity", lambda pid: set(range(cpus)))
    pools = []
    real_pool = outputs.ProcessPoolExecutor

    def counting_pool(*args, **kwargs):
        pools.append(args[0])
        return real_pool(*args, **kwargs)

    monkeypatch.setattr(outputs, "ProcessPoolExecutor", counting_pool)
    files = outputs.draw_figures(dataset, tmp_path)
    assert pools == [workers]  # at most one per figure
    assert files == EXPECTED and written(tmp_path) == sorted(EXPECTED)
    assert (tmp_path / "km_os_responder.png").read_bytes()[:8] == PNG_SIGNATURE
    assert (
        "Overall survival by response to blinatumomab (CR/CRi)"
        in (tmp_path / "km_os_responder.svg").read_text()
    )


def signed_draw(specs, out, draw=outputs._draw):
    """outputs._draw, noting which process drew each figure (forked workers run it too)."""
    for spec in specs:
        (out / f"{spec.stem}.drawn-by").write_text(str(os.getpid()))
    draw(specs, out)


def test_the_caller_draws_the_figures_no_worker_has_started(dataset, tmp_path, monkeypatch):
    """The worker takes the figures first to last, the caller (done with its tables) last to
    first: both draw, and every figure is drawn once."""
    monkeypatch.setattr(outputs.os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(outputs, "_draw", signed_draw)
    drawing = outputs.Drawing(outputs.paper_figure_specs(dataset), tmp_path)
    while not drawing.jobs[0].running():
        time.sleep(0.01)
    files = drawing.wait()
    drawers = [(tmp_path / f"{stem}.drawn-by").read_text() for stem in STEMS]
    here = str(os.getpid())
    assert drawers[0] != here and drawers[-1] == here  # the worker first, this process last
    split = drawers.index(here)
    assert drawers[split:] == [here] * (len(STEMS) - split)
    assert files == EXPECTED and written(tmp_path) == sorted(
        EXPECTED + [f"{stem}.drawn-by" for stem in STEMS]
    )


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


def blas_threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_the_run_leaves_the_workers_cpus_to_them_until_its_figures_are_drawn(
    dataset, tmp_path, monkeypatch
):
    """numpy's BLAS would otherwise start a thread per CPU for the Cox fits, competing with the
    drawing workers; the process gets its threads back afterwards, after a failure too."""
    if not blas_threads():
        pytest.skip("numpy without a BLAS threadpoolctl sees")
    monkeypatch.setattr(outputs.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    before = blas_threads()
    drawing = outputs.Drawing(outputs.paper_figure_specs(dataset), tmp_path / "a")
    assert blas_threads() == [1] * len(before)  # 4 CPUs, 3 drawing workers
    drawing.wait()
    assert blas_threads() == before

    def failing_tables(snapshot, parameters):
        assert blas_threads() == [1] * len(before)
        raise RuntimeError("a table failed")

    monkeypatch.setattr(outputs, "compute_tables", failing_tables)
    monkeypatch.setattr(outputs, "landmark_figure_specs", lambda df, days: [])
    monkeypatch.setattr(outputs, "write_dataset", lambda df, out: [])
    snapshot = RegistrySnapshot(dataset=dataset, adverse_events=pd.DataFrame())
    with pytest.raises(RuntimeError, match="a table failed"):
        outputs.write_run(snapshot, tmp_path / "b", outputs.default_parameters())
    assert blas_threads() == before


def test_a_run_in_a_thread_of_the_web_process_draws_without_forking(dataset, tmp_path, monkeypatch):
    """A background run (no broker) must not fork from a process with other threads."""
    import threading

    monkeypatch.setattr(outputs.os, "sched_getaffinity", lambda pid: set(range(4)))
    pools = []
    monkeypatch.setattr(outputs, "ProcessPoolExecutor", lambda *a, **k: pools.append(a))
    drawn = []
    thread = threading.Thread(target=lambda: drawn.extend(outputs.draw_figures(dataset, tmp_path)))
    thread.start()
    thread.join()
    assert pools == [] and drawn == EXPECTED and written(tmp_path) == sorted(EXPECTED)


def test_the_worker_writes_the_dataset_files_and_they_equal_those_written_here(
    dataset, tmp_path, monkeypatch
):
    """The dataset's files are the worker's first jobs (DatasetSpec), the same bytes as the run
    writing them itself (the SPSS header's creation time aside: compared as read back)."""
    monkeypatch.setattr(outputs.os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(outputs, "_draw", signed_draw)
    (tmp_path / "worker").mkdir()
    specs = [outputs.DatasetSpec(fmt, dataset) for fmt in ("csv", "xlsx")]
    drawing = outputs.Drawing(specs + outputs.paper_figure_specs(dataset), tmp_path / "worker")
    while not drawing.jobs[0].running() and not drawing.jobs[0].done():
        time.sleep(0.01)
    files = drawing.wait()
    assert files[:2] == ["analysis_dataset.csv", "analysis_dataset.xlsx"]
    assert files[2:] == EXPECTED
    drawer = (tmp_path / "worker" / "analysis_dataset.csv.drawn-by").read_text()
    assert drawer != str(os.getpid())  # the worker wrote it
    (tmp_path / "here").mkdir()
    for fmt in ("csv", "xlsx"):
        outputs.write_dataset_as(dataset, tmp_path / "here", fmt)
    name = "analysis_dataset.csv"
    assert (tmp_path / "worker" / name).read_bytes() == (tmp_path / "here" / name).read_bytes()
    pd.testing.assert_frame_equal(
        pd.read_excel(tmp_path / "worker" / "analysis_dataset.xlsx"),
        pd.read_excel(tmp_path / "here" / "analysis_dataset.xlsx"),
    )
