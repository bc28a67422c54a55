"""`arcsolver report`: the page and PNGs of two tiny runs, every curve with exactly the logged points, the config
diff, the gallery, and the output rules (never inside a run, never over a folder it did not write)."""
import sys

import orjson
import pytest
from click.testing import CliRunner

from arcsolver.cli import main
from arcsolver.data.arc_dataset import TaskSet, build
from arcsolver.data.arc_tasks import load_tasks
from arcsolver.training.config import build_config
from arcsolver.training.run_report import MARKER, PANELS, config_rows, load_run, panel_figures
from arcsolver.training.train import train

from conftest import BUNDLED

STEPS = ["max_steps=6", "log_every=1", "eval_interval_steps=3", "eval_max_batches=1"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two tiny runs that differ in their learning rate, on the bundled tasks."""
    root = tmp_path_factory.mktemp("report")
    build(root / "data", [TaskSet("b", load_tasks(BUNDLED), test_set=True)], num_aug=2, seed=1, canvas=10)
    for name, lr in (("a", "1e-3"), ("b", "3e-3")):
        train(build_config("tiny-cpu", STEPS + [f"lr={lr}"], data=str(root / "data"), out=str(root / name)),
              cpu=True, quiet=True)
    return root


def _records(run):
    return [orjson.loads(x) for x in (run / "metrics.jsonl").read_bytes().splitlines()]


def test_every_curve_has_the_logged_number_of_points(runs):
    loaded = [load_run(runs / "a"), load_run(runs / "b")]
    figures = panel_figures(loaded)
    assert set(figures) == {"loss", "train_accuracy", "eval", "throughput", "lr"}  # no MFU logged on a CPU
    checked = 0
    for panel in PANELS:
        if panel.name not in figures:
            continue
        lines = figures[panel.name].axes[0].get_lines()
        for run in ("a", "b"):
            for key in panel.keys:
                logged = [(r["step"], r[key]) for r in _records(runs / run) if r["split"] == panel.split and key in r]
                label = run if len(panel.keys) == 1 else f"{run}: {key}"
                drawn = [line for line in lines if line.get_label() == label]
                if not logged:
                    assert not drawn, (panel.name, label)
                    continue
                assert len(drawn) == 1, (panel.name, label)
                assert list(zip(drawn[0].get_xdata(), drawn[0].get_ydata())) == logged, (panel.name, label)
                checked += 1
    assert checked >= 2 * (1 + 3 + 2 + 1 + 1)  # loss, 3 train accuracies, eval token+exact, samples/s, lr


def test_the_config_table_shows_what_differs(runs):
    rows, shared = config_rows([load_run(runs / "a"), load_run(runs / "b")])
    keys = dict(rows)
    assert keys["train.lr"] == [1e-3, 3e-3] and "train.out" in keys
    assert "train.seed" not in keys and "model.hidden_size" not in keys and shared > 20


def test_report_writes_the_page_pngs_and_the_gallery_and_can_replace_itself(runs, tmp_path):
    out = tmp_path / "rep"
    out.mkdir()
    (out / "stale.png").write_bytes(b"")
    (out / MARKER).write_text("{}")  # an earlier report: replaced whole
    r = CliRunner().invoke(main, ["report", str(runs / "a"), str(runs / "b"), "--out", str(out), "--cpu",
                                  "--gallery-tasks", "3", "--versions", "2"])
    assert r.exit_code == 0, r.output
    assert not (out / "stale.png").exists()
    page = (out / "index.html").read_text()
    for name in ("loss", "train_accuracy", "eval", "throughput", "lr"):
        png = (out / f"{name}.png").read_bytes()
        assert png.startswith(b"\x89PNG") and f'data-file="{name}.png"' in page
    assert sorted(p.parent.name for p in (out / "gallery").glob("*/*.png")) == ["a"] * 3 + ["b"] * 3
    assert page.count('class="task"') == 6 and "solved" in page and "train.lr" in page
    assert "http://" not in page and "https://" not in page  # self-contained: no network
    assert (out / MARKER).is_file()


def _refused(args, tmp_path):
    r = CliRunner().invoke(main, ["report", *args, "--gallery-tasks", "0"])
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert r.exit_code == 2 and len(lines) == 1 and "Traceback" not in r.output, r.output
    return lines[0]


def test_report_never_writes_inside_a_run_nor_over_a_folder_it_did_not_write(runs, tmp_path):
    before = sorted(p.name for p in (runs / "a").iterdir())
    assert "lies inside the input" in _refused([str(runs / "a"), "--out", str(runs / "a" / "report")], tmp_path)
    assert sorted(p.name for p in (runs / "a").iterdir()) == before
    assert "contains the input" in _refused([str(runs / "a"), "--out", str(runs)], tmp_path)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert "not written by arcsolver as an `arcsolver report`" in _refused([str(runs / "a"), "--out", str(mine)],
                                                                           tmp_path)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    assert "no metrics.jsonl" in _refused([str(tmp_path), "--out", str(tmp_path / "x")], tmp_path)
    assert not (tmp_path / "x").exists()


def test_a_cut_last_line_is_left_out_and_a_bad_line_inside_is_named(runs, tmp_path):
    import shutil
    run = tmp_path / "copy"
    shutil.copytree(runs / "a", run)
    good = (run / "metrics.jsonl").read_bytes()
    (run / "metrics.jsonl").write_bytes(good + b'{"step": 7, "spl')
    assert len(load_run(run).records) == len(good.splitlines())
    (run / "metrics.jsonl").write_bytes(b'{"step": 1}garbage\n' + good)
    assert "metrics.jsonl: line 1: not a JSON line" in _refused([str(run), "--out", str(tmp_path / "x")], tmp_path)


def test_without_matplotlib_one_line_names_the_extra_and_nothing_is_written(runs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    line = _refused([str(runs / "a"), "--out", str(tmp_path / "rep")], tmp_path)
    assert "arcsolver[report]" in line
    assert not (tmp_path / "rep").exists()
