"""Pictures of tasks and predictions: one PNG per task, and a static HTML report for a whole run.

A task picture has one row per demo (input -> output) and one per test input (input -> truth, then the attempts).
Each grid is drawn in the standard ARC palette with grid lines and a label with its size. When the truth is known,
each attempt gets a green frame and a check mark if it is exactly right, a red frame and a cross if not; without a
truth the frame is grey.

Predictions can come in any of the shapes this toolkit produces, recognised by their structure: a Kaggle submission
(`{task: [{"attempt_1", "attempt_2"}, ...]}`), the candidates JSON of `vote.candidates_json`
(`{task: [{"test_index", "candidates": [{"grid", "votes", "mean_q"}]}]}`, the top two are drawn) or a `VoteBook`.

The HTML report is `index.html` plus the PNGs in `img/` beside it (lazy-loaded, so a 1000-task report stays quick to
open); it needs no server. Every file is written atomically.
"""

from __future__ import annotations

import functools
import html
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont, PngImagePlugin

from arcsolver.data.arc_tasks import Task, load_tasks, parse_grid, same_grid
from arcsolver.runtime.errors import InputError
from arcsolver.runtime.jsonio import atomic_write_bytes, read_json
from arcsolver.runtime.outputs import PNG_SOFTWARE, claim_folder, claim_output
from arcsolver.runtime.report import say
from arcsolver.inference.vote import VoteBook

PALETTE = ["#000000", "#0074D9", "#FF4136", "#2ECC40", "#FFDC00", "#AAAAAA", "#F012BE", "#FF851B", "#7FDBFF", "#870C25"]
_RGB = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in PALETTE], dtype=np.uint8)

BACKGROUND = (255, 255, 255)
TEXT = (30, 30, 30)
GRID_LINE = (85, 85, 85)
RIGHT = (0, 160, 70)
WRONG = (220, 20, 40)
UNKNOWN = (150, 150, 150)

PAD = 10  # space between panels
LABEL_H = 16
FRAME = 4  # attempt frame thickness
ARROW_W = 28


@dataclass
class Shown:
    """One attempt to draw: a label and the grid (None when the attempt is missing or not a valid grid)."""

    label: str
    grid: np.ndarray | None


@functools.lru_cache(maxsize=None)
def _font(size: int = 11) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow built without FreeType: the fixed bitmap font, still readable
        return ImageFont.load_default()


def _grid_image(grid: np.ndarray, cell: int) -> Image.Image:
    """Grid -> RGB image, `cell` pixels per cell plus 1-pixel grid lines (numpy, no per-cell drawing calls)."""
    h, w = grid.shape
    step = cell + 1
    img = np.empty((h * step + 1, w * step + 1, 3), dtype=np.uint8)
    img[:] = GRID_LINE
    colours = _RGB[np.clip(grid, 0, 9)]
    for i in range(cell):
        for j in range(cell):
            img[1 + i:h * step:step, 1 + j:w * step:step] = colours
    return Image.fromarray(img, "RGB")


def _cell_size(grids: list[np.ndarray]) -> int:
    side = max([max(g.shape) for g in grids] + [1])
    return int(np.clip(300 // side, 4, 24))  # a 30x30 grid ~300 px, small grids not absurdly large


def _mark(draw: ImageDraw.ImageDraw, x: int, y: int, ok: bool) -> None:
    s = 11
    if ok:
        draw.line([(x, y + s // 2), (x + s // 3, y + s), (x + s, y)], fill=RIGHT, width=3)
    else:
        draw.line([(x, y), (x + s, y + s)], fill=WRONG, width=3)
        draw.line([(x, y + s), (x + s, y)], fill=WRONG, width=3)


def _grid_px(grid: np.ndarray | None, cell: int) -> tuple[int, int]:
    """(width, height) in pixels of a drawn grid, or of the placeholder for a missing one."""
    if grid is None:
        return 3 * cell + 4, 3 * cell + 4
    return grid.shape[1] * (cell + 1) + 1, grid.shape[0] * (cell + 1) + 1


def _label_text(label: str, grid: np.ndarray | None) -> str:
    return label if grid is None else f"{label} {grid.shape[0]}x{grid.shape[1]}"


def _panel_size(label: str, grid: np.ndarray | None, cell: int, framed: bool) -> tuple[int, int]:
    gw, gh = _grid_px(grid, cell)
    f = 2 * FRAME if framed else 0
    text_w = int(_font().getlength(_label_text(label, grid))) + (16 if framed else 0) + 4
    return max(gw + f, text_w), LABEL_H + gh + f


def _draw_panel(canvas: Image.Image, x: int, y: int, label: str, grid: np.ndarray | None, cell: int,
                verdict: bool | None = None, framed: bool = False) -> None:
    """Label above, grid below; with `framed`, a coloured frame (verdict True/False/None = right/wrong/unknown)."""
    draw = ImageDraw.Draw(canvas)
    font = _font()
    tx = x
    if framed and verdict is not None:
        _mark(draw, x, y + 2, verdict)
        tx += 16
    draw.text((tx, y + 1), _label_text(label, grid), fill=TEXT, font=font)
    gy = y + LABEL_H
    gw, gh = _grid_px(grid, cell)
    f = FRAME if framed else 0
    if framed:
        colour = UNKNOWN if verdict is None else (RIGHT if verdict else WRONG)
        draw.rectangle([x, gy, x + gw + 2 * FRAME - 1, gy + gh + 2 * FRAME - 1], fill=colour)
    if grid is None:
        draw.rectangle([x + f, gy + f, x + f + gw - 1, gy + f + gh - 1], fill=(235, 235, 235), outline=UNKNOWN)
        draw.text((x + f + 3, gy + f + gh // 2 - 6), "invalid", fill=WRONG, font=font)
    else:
        canvas.paste(_grid_image(grid, cell), (x + f, gy + f))


def _arrow(canvas: Image.Image, x: int, y: int) -> None:
    draw = ImageDraw.Draw(canvas)
    draw.line([(x + 4, y), (x + ARROW_W - 6, y)], fill=TEXT, width=2)
    draw.polygon([(x + ARROW_W - 4, y), (x + ARROW_W - 11, y - 5), (x + ARROW_W - 11, y + 5)], fill=TEXT)


def render_task_image(task: Task, attempts: list[list[Shown]] | None = None) -> Image.Image:
    """The picture of one task (see the module docstring); `attempts[i]` are drawn beside test input i."""
    grids = [g for p in task.train + task.test for g in (p.input, p.output) if g is not None]
    grids += [s.grid for row in (attempts or []) for s in row if s.grid is not None]
    cell = _cell_size(grids)

    # Each row: a list of panels (label, grid, verdict, framed), with an arrow after the first panel.
    rows: list[list[tuple[str, np.ndarray | None, bool | None, bool]]] = []
    for n, p in enumerate(task.train):
        rows.append([(f"train {n + 1} in", p.input, None, False), (f"train {n + 1} out", p.output, None, False)])
    for n, p in enumerate(task.test):
        row = [(f"test {n + 1} in", p.input, None, False)]
        if p.output is not None:
            row.append((f"test {n + 1} truth", p.output, None, False))
        else:
            row.append(("truth unknown", None, None, False))
        for s in (attempts[n] if attempts and n < len(attempts) else []):
            verdict = None if p.output is None else same_grid(s.grid, p.output)
            row.append((s.label, s.grid, verdict, True))
        rows.append(row)

    title_h = 22
    sizes = [[_panel_size(label, g, cell, framed) for label, g, _, framed in row] for row in rows]
    width = max(sum(w for w, _ in sz) + PAD * (len(sz) - 1) + ARROW_W for sz in sizes) + 2 * PAD
    height = title_h + sum(max(h for _, h in sz) for sz in sizes) + PAD * (len(rows) + 1)
    canvas = Image.new("RGB", (max(width, 200), height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    draw.text((PAD, 5), f"task {task.id}: {len(task.train)} demos, {len(task.test)} test", fill=TEXT,
              font=_font(13))
    y = title_h + PAD
    for n, (row, sz) in enumerate(zip(rows, sizes)):
        if n == len(task.train):  # a rule between the demos and the tests
            draw.line([(PAD, y - PAD // 2), (canvas.width - PAD, y - PAD // 2)], fill=UNKNOWN, width=1)
        x = PAD
        for m, ((label, g, verdict, framed), (w, h)) in enumerate(zip(row, sz)):
            if label == "truth unknown":
                draw.text((x, y + 1), "truth unknown", fill=UNKNOWN, font=_font())
            else:
                _draw_panel(canvas, x, y, label, g, cell, verdict, framed)
            x += w + PAD
            if m == 0:  # the arrow points at the middle of the input grid
                _arrow(canvas, x - PAD, y + LABEL_H + _grid_px(g, cell)[1] // 2)
                x += ARROW_W
        y += max(h for _, h in sz) + PAD
    return canvas


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", PNG_SOFTWARE)  # how a later `show` knows the file is its own (runtime/outputs.py)
    img.save(buf, format="PNG", optimize=False, pnginfo=info)
    return buf.getvalue()


def _grid_or_none(value: Any) -> np.ndarray | None:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    try:
        return parse_grid(value, file="", task="", field="")
    except InputError:
        return None


def _normalise(task: Task, pred: Any) -> list[list[Shown]] | None:
    """One task's predictions, in any supported shape (see the module docstring), as Shown rows per test input."""
    if pred is None:
        return None
    if isinstance(pred, VoteBook):
        out = []
        for i in range(len(task.test)):
            out.append([Shown(f"#{r + 1} ({c.votes} votes, q {c.mean_q:.2f})", c.grid)
                        for r, c in enumerate(pred.ranked(task.id, i)[:2])])
        return out
    if not isinstance(pred, list):
        return None
    out = [[] for _ in task.test]
    for i, entry in enumerate(pred):
        if isinstance(entry, dict) and "candidates" in entry:  # candidates JSON
            ti = entry.get("test_index", i)
            if isinstance(ti, int) and 0 <= ti < len(out):
                cands = entry["candidates"] if isinstance(entry["candidates"], list) else []
                out[ti] = [Shown(f"#{r + 1} ({c.get('votes', '?')} votes)", _grid_or_none(c.get("grid")))
                           for r, c in enumerate(cands[:2]) if isinstance(c, dict)]
        elif isinstance(entry, dict) and i < len(out):  # Kaggle submission entry
            out[i] = [Shown(name, _grid_or_none(entry.get(name))) for name in ("attempt_1", "attempt_2")]
        elif isinstance(entry, list) and i < len(out):  # plain list of grids per test input
            out[i] = [Shown(f"attempt {r + 1}", _grid_or_none(g)) for r, g in enumerate(entry)]
    return out


def _lookup(preds: Any, task: Task) -> Any:
    if preds is None or isinstance(preds, VoteBook):
        return preds
    return preds.get(task.id) if isinstance(preds, dict) else None


def render_task_png(task: Task, out_path: str | Path, attempts: Any = None) -> Path:
    """Draw one task to a PNG (atomically). `attempts`: this task's entry of a submission or candidates JSON, a
    VoteBook, a list of grid lists per test input, or None for the task alone."""
    img = render_task_image(task, _normalise(task, attempts))
    out_path = Path(out_path)
    atomic_write_bytes(out_path, _png_bytes(img))
    return out_path


def task_png(task: Task, attempts: Any = None) -> bytes:
    """The picture of one task as PNG bytes; `attempts` as for `render_task_png`."""
    return _png_bytes(render_task_image(task, _normalise(task, attempts)))


def solved_tests(task: Task, attempts: Any) -> int:
    """How many of the task's test inputs one of the drawn attempts answers exactly (0 where the truth is unknown)."""
    shown = _normalise(task, attempts) or []
    return sum(p.output is not None and any(same_grid(s.grid, p.output) for s in row)
               for p, row in zip(task.test, shown))


def _status(task: Task, shown: list[list[Shown]] | None) -> tuple[str, str]:
    """(text, css class) for the index: solved k/n when the truth is known."""
    if not shown or not any(shown):
        return "no prediction", "none"
    if not task.has_test_outputs:
        return "no truth", "none"
    ok = sum(any(same_grid(s.grid, p.output) for s in row) for p, row in zip(task.test, shown))
    n = len(task.test)
    return f"{ok}/{n} solved", "ok" if ok == n else ("part" if ok else "bad")


def _file_name(n: int, task_id: str) -> str:
    # Task ids come from file names and may hold anything; the index prefix keeps sanitised names unique.
    return f"{n:04d}_{re.sub(r'[^A-Za-z0-9._-]', '_', task_id)[:80]}.png"


def render_report_html(tasks: list[Task], submission_or_candidates: Any, out_dir: str | Path) -> Path:
    """Write `out_dir/index.html` and `out_dir/img/*.png` for every task; returns the index path.

    `submission_or_candidates`: a submission dict, a candidates JSON dict, a VoteBook, or None (tasks only).
    """
    out_dir = Path(out_dir)
    rows, sections = [], []
    solved = known = 0
    for n, task in enumerate(tasks):
        shown = _normalise(task, _lookup(submission_or_candidates, task))
        name = _file_name(n, task.id)
        atomic_write_bytes(out_dir / "img" / name, _png_bytes(render_task_image(task, shown)))
        text, cls = _status(task, shown)
        if task.has_test_outputs and shown:
            known += 1
            solved += cls == "ok"
        tid = html.escape(task.id)
        anchor = f"t{n}"
        rows.append(f'<tr><td><a href="#{anchor}">{tid}</a></td><td>{len(task.train)}</td><td>{len(task.test)}</td>'
                    f'<td class="{cls}">{html.escape(text)}</td></tr>')
        sections.append(f'<section id="{anchor}"><h2>{tid} <span class="{cls}">{html.escape(text)}</span> '
                        f'<a href="#top">top</a></h2><img loading="lazy" src="img/{html.escape(name)}" '
                        f'alt="task {tid}"></section>')
    summary = f"{len(tasks)} tasks"
    if known:
        summary += f"; fully solved {solved} of {known} with known answers ({100 * solved / known:.1f}%)"
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>arcsolver report</title><link rel="icon" href="data:,">
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; }} td, th {{ padding: 2px 10px; border-bottom: 1px solid #ddd; text-align: left; }}
.ok {{ color: #00a046; font-weight: bold; }} .part {{ color: #d08000; font-weight: bold; }}
.bad {{ color: #dc1428; }} .none {{ color: #888; }}
section {{ margin: 2em 0; }} h2 {{ font-size: 1.1em; }} h2 a {{ font-size: 0.7em; font-weight: normal; }}
img {{ max-width: 100%; border: 1px solid #ccc; }}
</style></head><body id="top">
<h1>arcsolver report</h1><p>{html.escape(summary)}</p>
<table><tr><th>task</th><th>demos</th><th>tests</th><th>status</th></tr>
{chr(10).join(rows)}
</table>
{chr(10).join(sections)}
</body></html>
"""
    index = out_dir / "index.html"
    atomic_write_bytes(index, page.encode("utf-8"))
    return index


def _load_predictions(path: Path) -> dict:
    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError(f"expected a submission or candidates object keyed by task id, got {type(data).__name__}",
                         file=str(path))
    return data


def show_cmd(tasks_spec: str, task_id: str | None, submission: Path | None, out: Path,
             overwrite: bool = False) -> str:
    """`arcsolver show`: one task to a PNG (`task_id` given; `out` is the .png or a folder for it), or the whole
    source to an HTML report in the folder `out` (an earlier report there is replaced whole; anything else only with
    `overwrite`). Returns the line to print."""
    inputs = [tasks_spec, submission]
    if task_id is None:
        claim_output(out, "report", inputs=inputs, overwrite=overwrite)
    tasks = load_tasks(tasks_spec)
    preds = _load_predictions(submission) if submission is not None else None
    if task_id is not None:
        match = [t for t in tasks if t.id == task_id]
        if not match:
            near = ", ".join(t.id for t in tasks[:5])
            raise InputError(f"no task {task_id!r} here ({len(tasks)} tasks, e.g. {near})", file=str(tasks_spec))
        task = match[0]
        path = out if out.suffix.lower() == ".png" else out / _file_name(0, task.id)[5:]
        notice = claim_output(path, "png", inputs=inputs, overwrite=overwrite).notice()
        if notice:
            say(notice)
        render_task_png(task, path, _lookup(preds, task))
        return f"wrote {path}"
    if preds is not None:
        known = {t.id for t in tasks}
        if not any(k in known for k in preds):
            raise InputError("none of its task ids are in the task source", file=str(submission))
    claim_folder(out, "report", inputs=inputs, overwrite=overwrite)
    index = render_report_html(tasks, preds, out)
    return f"wrote {index} ({len(tasks)} tasks)"
