"""`arcsolver report RUN [RUN...]`: what one or several training runs did, as one HTML page with PNGs beside it.

The page holds, for the runs overlaid (one colour per run): the training curves (loss, token / exact / Q-halt
accuracy, learning rate), the evaluation curve (token and exact accuracy, voted pass@1/@2 where the run voted),
throughput (samples/s, and MFU where logged), a table of each run's last numbers, the configuration (all of it for
one run; for several, the fields that differ), and a gallery of test tasks with the model's two attempts, drawn by
`show`'s renderer, solved ones marked. The curves are matplotlib figures of exactly the points in `metrics.jsonl`;
the gallery votes the run's latest checkpoint over the first `versions` augmented versions of its dataset's test
tasks (as `predict --vote --max-versions`), on a copy in a temporary folder.

Self-contained: every picture is also embedded in the page (a data: URI), so `index.html` alone can be mailed or
moved; the PNGs are there for slides and READMEs. Nothing is fetched from the network.

Output rules: every input is read and every option checked before the first byte is written; `--out` must be a new
or empty folder, or a report this command wrote earlier (it carries `arcsolver-report.json`), and it is never inside
a run given as input (nor a run inside it); the report is built beside `--out` and renamed into place.
"""

from __future__ import annotations

import base64
import html
import io
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from arcsolver.training.config import REPORT
from arcsolver.data.loader import ArcSource
from arcsolver.inference.predict import predict
from arcsolver.inference.show import solved_tests, task_png
from arcsolver.runtime.outputs import claim_output, mark_folder
from arcsolver.runtime.errors import InputError
from arcsolver.runtime.jsonio import atomic_dir, read_json, write_json
from arcsolver.runtime.report import say

MARKER = "arcsolver-report.json"  # what the page was made of (runs, curves); the output marker is outputs.MARKER
INSTALL_HINT = "pip install 'arcsolver[report]'"


@dataclass(frozen=True)
class Panel:
    """One figure: the metrics of one split drawn against the step, one line per (run, metric)."""
    name: str  # the PNG's file stem
    title: str
    split: str
    keys: tuple[str, ...]
    ylabel: str
    log_y: bool = False


PANELS = (
    Panel("loss", "Training loss per sample", "train", ("loss_per_sample",), "loss", log_y=True),
    Panel("train_accuracy", "Training accuracy (rows that halted)", "train",
          ("accuracy", "exact_accuracy", "q_halt_accuracy"), "accuracy"),
    Panel("eval", "Evaluation on the test split", "eval",
          ("token_accuracy", "exact_accuracy", "vote_pass@1", "vote_pass@2"), "accuracy"),
    Panel("throughput", "Throughput", "train", ("samples_per_s",), "samples / s"),
    Panel("mfu", "Model FLOPs utilisation", "train", ("mfu",), "MFU"),
    Panel("lr", "Learning rate", "train", ("lr",), "learning rate", log_y=True),
)

STYLES = ("-", "--", ":", "-.")  # one per metric of a panel; the colour is the run's


@dataclass
class Run:
    """One run folder as the report reads it: its metrics lines and the config of its latest checkpoint."""
    name: str
    path: Path
    records: list[dict]
    config: dict = field(default_factory=dict)
    checkpoint: Path | None = None

    def series(self, split: str, key: str) -> tuple[list[int], list[float]]:
        """(steps, values) of `key` in the lines of `split` that log it as a number, in file order."""
        pts = [(r["step"], float(r[key])) for r in self.records
               if r.get("split") == split and isinstance(r.get(key), (int, float)) and not isinstance(r[key], bool)]
        return [s for s, _ in pts], [v for _, v in pts]


def load_run(path: str | Path) -> Run:
    """Read a run folder (from `arcsolver train` or `finetune`): metrics.jsonl and, if any, its latest checkpoint's
    config.json. A bad line is one error naming the file and the line (a cut last line is left out)."""
    p = Path(path)
    if not p.is_dir():
        raise InputError("not found or not a folder (a run folder from `arcsolver train`)", file=str(p))
    metrics = p / "metrics.jsonl"
    if not metrics.is_file():
        raise InputError("no metrics.jsonl here (a run folder from `arcsolver train`)", file=str(p))
    records = []
    raw = metrics.read_bytes()
    lines = raw.splitlines()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError:
            if n == len(lines) and not raw.endswith(b"\n"):
                break  # a line cut by a crash, or being written by a run still going: not an error
            raise InputError("not a JSON line", file=str(metrics), field=f"line {n}") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("step"), int) or not isinstance(rec.get("split"), str):
            raise InputError("expected an object with an integer step and a split", file=str(metrics),
                             field=f"line {n}")
        records.append(rec)
    run = Run(name=p.resolve().name, path=p, records=records)
    latest = p / "latest"
    if latest.is_file():
        ck = p / latest.read_text().strip()
        if (ck / "config.json").is_file():
            cfg = read_json(ck / "config.json")
            if not isinstance(cfg, dict):
                raise InputError("expected a JSON object", file=str(ck / "config.json"))
            run.config, run.checkpoint = cfg, ck
    return run


def run_names(runs: list[Run]) -> None:
    """Give runs with the same folder name distinct labels (their parent folder in front)."""
    seen: dict[str, int] = {}
    for r in runs:
        seen[r.name] = seen.get(r.name, 0) + 1
    for r in runs:
        if seen[r.name] > 1:
            r.name = f"{r.path.resolve().parent.name}/{r.name}"


def flat_config(cfg: dict, prefix: str = "") -> dict[str, object]:
    """{"train": {"lr": 1e-3, "arch": {...}}} -> {"train.lr": 1e-3, "train.arch.hidden_size": ...}."""
    out: dict[str, object] = {}
    for k, v in cfg.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flat_config(v, key + "."))
        else:
            out[key] = v
    return out


def config_rows(runs: list[Run]) -> tuple[list[tuple[str, list[object]]], int]:
    """(key, value per run) for the table: every field for one run, the fields that differ for several; and the
    number of fields the runs share."""
    flats = [flat_config(r.config) for r in runs]
    keys = sorted(set().union(*flats)) if flats else []
    missing = object()
    rows = [(k, [f.get(k, missing) for f in flats]) for k in keys]
    if len(runs) > 1:
        differ = [(k, vs) for k, vs in rows if any(v is not vs[0] and v != vs[0] for v in vs[1:])]
        return [(k, [None if v is missing else v for v in vs]) for k, vs in differ], len(rows) - len(differ)
    return [(k, [None if v is missing else v for v in vs]) for k, vs in rows], 0


def check_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise InputError(f"drawing the curves needs matplotlib: {INSTALL_HINT}", field="report") from None


def panel_figures(runs: list[Run]) -> dict[str, object]:
    """One matplotlib Figure per panel that has points in some run (the Agg backend: no display needed)."""
    import matplotlib  # the `report` extra: imported only when pictures are drawn
    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator
    colours = [f"C{i % 10}" for i in range(len(runs))]
    figures = {}
    for panel in PANELS:
        lines = [(run, colour, key, *run.series(panel.split, key)) for run, colour in zip(runs, colours)
                 for key in panel.keys]
        lines = [x for x in lines if x[3]]
        if not lines:
            continue
        fig = Figure(figsize=(6.4, 3.6), dpi=100, layout="constrained")
        ax = fig.add_subplot()
        for run, colour, key, steps, values in lines:
            style = STYLES[panel.keys.index(key) % len(STYLES)]
            label = run.name if len(panel.keys) == 1 else f"{run.name}: {key}"
            # a single point is a marker: a line of one point draws nothing
            ax.plot(steps, values, style, color=colour, label=label, marker="o" if len(steps) == 1 else None,
                    markersize=4)
        values = [v for *_, vs in lines for v in vs]
        if panel.log_y and min(values) > 0 and max(values) > 10 * min(values):  # log only where it spans a decade
            ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(panel.title)
        ax.set_xlabel("step")
        ax.set_ylabel(panel.ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        figures[panel.name] = fig
    return figures


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


@dataclass
class Gallery:
    """One run's gallery: (task id, PNG bytes, solved test inputs, test inputs) per task, or why there is none."""
    run: str
    tasks: list[tuple[str, bytes, int, int]] = field(default_factory=list)
    note: str = ""
    checkpoint: str = ""
    versions: int = 0


def gallery(run: Run, max_tasks: int, versions: int, cpu: bool | None) -> Gallery:
    """Vote the run's latest checkpoint over the first `versions` versions of the first `max_tasks` test tasks of its
    dataset (only those are predicted), in a temporary folder; a run that cannot be predicted gets a note instead."""
    g = Gallery(run.name)
    data_info = run.config.get("data") if isinstance(run.config.get("data"), dict) else {}
    data = data_info.get("path")
    if run.checkpoint is None:
        g.note = "no checkpoint in this run folder"
    elif data_info.get("kind") != "arc":
        g.note = "not an ARC run (the gallery draws ARC tasks)"
    elif not data or not Path(data).is_dir():
        g.note = f"its dataset is not here any more: {data}"
    if g.note:
        return g
    store = ArcSource(data).store
    test_idx = list(store.test_task_indices())
    if not test_idx:
        g.note = "its dataset has no test tasks"
        return g
    tasks = [store.task(i) for i in test_idx[:max_tasks]]
    say(f"report: voting {run.checkpoint} over {versions} versions of {len(tasks)} test tasks")
    with tempfile.TemporaryDirectory(prefix="arcsolver-report-") as tmp:
        chosen = Path(tmp) / "gallery_challenges.json"  # a Kaggle-style file: any task id is a valid key
        write_json(chosen, {t.id: t.to_json() for t in tasks})
        try:
            res = predict(run.checkpoint, Path(tmp) / "submission.json", data=data, tasks=str(chosen),
                          max_versions=versions, quiet=True, cpu=cpu, candidates=False)
        except InputError as e:  # the curves are the report; a checkpoint that cannot predict gets a note
            g.note = f"no gallery: {e}"
            return g
    g.checkpoint, g.versions = str(run.checkpoint), versions
    for task in tasks:
        g.tasks.append((task.id, task_png(task, res.book), solved_tests(task, res.book), len(task.test)))
    if len(test_idx) > max_tasks:
        g.note = f"the first {max_tasks} of {len(test_idx)} test tasks"
    return g


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, dict)):
        return orjson.dumps(v).decode()
    return str(v)


def _last(run: Run, split: str, key: str):
    _, values = run.series(split, key)
    return values[-1] if values else None


def summary_rows(runs: list[Run]) -> list[list[str]]:
    rows = []
    for r in runs:
        times = [x["time"] for x in r.records if isinstance(x.get("time"), (int, float))]
        train_steps, _ = r.series("train", "loss_per_sample")
        sps = r.series("train", "samples_per_s")[1]
        rows.append([r.name, _fmt(train_steps[-1] if train_steps else None),
                     f"{times[-1] - times[0]:.0f} s" if len(times) > 1 else "-",
                     _fmt(_last(r, "train", "loss_per_sample")), _fmt(_last(r, "train", "exact_accuracy")),
                     _fmt(_last(r, "eval", "exact_accuracy")), _fmt(_last(r, "eval", "vote_pass@2")),
                     _fmt(sum(sps) / len(sps) if sps else None), html.escape(str(r.checkpoint or "-"))])
    return rows


def check_out(out: Path, run_paths: list[Path], overwrite: bool = False) -> None:
    """--out (runtime/outputs.py): not a run given as input, inside one or holding one; new, empty or a report
    written by this command (anything else only with `overwrite`)."""
    notice = claim_output(out, "run-report", inputs=run_paths, overwrite=overwrite).notice()
    if notice:
        say(notice)


def report(runs: list[str | Path], out: str | Path, *, gallery_tasks: int = REPORT.gallery_tasks,
           versions: int = REPORT.versions, cpu: bool | None = REPORT.cpu, overwrite: bool = REPORT.overwrite) -> Path:
    """Write the report of `runs` into the folder `out` (see the module docstring); returns the page's path."""
    if not runs:
        raise InputError("no run folder given", field="RUN")
    if gallery_tasks < 0:
        raise InputError(f"expected >= 0, got {gallery_tasks}", field="--gallery-tasks")
    if versions < 1:
        raise InputError(f"expected >= 1, got {versions}", field="--versions")
    out = Path(out)
    check_matplotlib()
    loaded = [load_run(p) for p in runs]
    check_out(out, [r.path for r in loaded], overwrite)
    run_names(loaded)

    figures = panel_figures(loaded)
    pngs = {name: _png(fig) for name, fig in figures.items()}
    galleries = [gallery(r, gallery_tasks, versions, cpu) for r in loaded] if gallery_tasks else []
    page = render_page(loaded, pngs, galleries)
    with atomic_dir(out) as tmp:
        mark_folder(tmp, "run-report")
        for name, png in pngs.items():
            (tmp / f"{name}.png").write_bytes(png)
        for g in galleries:
            for n, (tid, png, _, _) in enumerate(g.tasks):
                (tmp / "gallery" / _safe(g.run)).mkdir(parents=True, exist_ok=True)
                (tmp / "gallery" / _safe(g.run) / f"{n:04d}_{_safe(tid)}.png").write_bytes(png)
        (tmp / "index.html").write_text(page, encoding="utf-8")
        write_json(tmp / MARKER, {"runs": [str(r.path.resolve()) for r in loaded], "curves": sorted(pngs),
                                  "gallery_tasks": gallery_tasks, "versions": versions})
    return out / "index.html"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:80]


def render_page(runs: list[Run], pngs: dict[str, bytes], galleries: list[Gallery]) -> str:
    esc = html.escape
    head = ["run", "last step", "wall time", "train loss", "train exact", "eval exact", "vote pass@2",
            "samples/s (mean)", "latest checkpoint"]
    summary = "".join("<tr>" + "".join(f"<td>{c if i == len(row) - 1 else esc(c)}</td>" for i, c in enumerate(row))
                      + "</tr>" for row in summary_rows(runs))
    curves = "".join(f'<figure class="curve"><img src="{_data_uri(png)}" alt="{esc(name)}" data-file="{esc(name)}.png">'
                     f"</figure>" for name, png in pngs.items()) or "<p>No metrics logged yet.</p>"
    rows, shared = config_rows(runs)
    cfg_head = "".join(f"<th>{esc(r.name)}</th>" for r in runs)
    cfg_body = "".join(f"<tr><td>{esc(k)}</td>" + "".join(f"<td>{esc(_fmt(v))}</td>" for v in vs) + "</tr>"
                       for k, vs in rows)
    cfg_note = (f"<p>{len(rows)} fields differ; {shared} are the same in every run.</p>" if len(runs) > 1
                else f"<p>{len(rows)} fields.</p>")
    gal = []
    for g in galleries:
        solved = sum(s == n and n > 0 for _, _, s, n in g.tasks)
        gal.append(f"<h3>{esc(g.run)}</h3>")
        if g.tasks:
            gal.append(f"<p>{esc(g.checkpoint)} voted over the first {g.versions} augmented versions of each test "
                       f"input: fully solved {solved} of {len(g.tasks)} drawn{'; ' + esc(g.note) if g.note else ''}"
                       "</p>")
        elif g.note:
            gal.append(f"<p class=note>{esc(g.note)}</p>")
        for tid, png, s, n in g.tasks:
            cls = "ok" if s == n and n > 0 else ("part" if s else "bad")
            gal.append(f'<figure class="task"><figcaption><span class="{cls}">{"&#10003;" if cls == "ok" else ""}'
                       f"{esc(tid)}: {s}/{n} solved</span></figcaption>"
                       f'<img src="{_data_uri(png)}" alt="task {esc(tid)}"></figure>')
    gallery_html = "".join(gal) if galleries else "<p>No gallery (--gallery-tasks 0).</p>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>arcsolver run report</title><link rel="icon" href="data:,">
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0; }}
td, th {{ padding: 2px 10px; border-bottom: 1px solid #ddd; text-align: left; font-size: 0.9em; }}
figure {{ display: inline-block; margin: 0.4em; vertical-align: top; }}
img {{ max-width: 100%; border: 1px solid #ccc; }} figure.curve img {{ width: 560px; }}
.ok {{ color: #00a046; font-weight: bold; }} .part {{ color: #d08000; font-weight: bold; }} .bad {{ color: #dc1428; }}
.note {{ color: #888; }}
</style></head><body>
<h1>arcsolver run report</h1>
<p>{len(runs)} run{'s' if len(runs) != 1 else ''}: {esc(', '.join(r.name for r in runs))}</p>
<h2>Summary</h2>
<table><tr>{''.join(f'<th>{esc(h)}</th>' for h in head)}</tr>{summary}</table>
<h2>Curves</h2>
{curves}
<h2>Configuration</h2>
{cfg_note}
<table><tr><th>field</th>{cfg_head}</tr>{cfg_body}</table>
<h2>Gallery: test tasks and the model's two attempts</h2>
{gallery_html}
</body></html>
"""

