"""plan.json: what a fine-tuning run planned for each phase, and what each phase really took, side by side.

The plan is written before training starts (each phase's estimated seconds and its start/end, counted from the run's
start, in the order the run executes them); each phase appends its actual seconds and figures (steps, versions, rows)
when it ends, so a run stopped half-way still shows what it planned and what it did. The Kaggle runner copies the
table into its run summary and `kaggle rehearse` prints it: the evidence for whether the plan's constants hold on the
machine at hand. `busy_share` is the part of the window spent inside training steps and prediction, the figure a
budget-filling plan is judged by.
"""

from __future__ import annotations

from pathlib import Path

from arcsolver.runtime.deadline import Plan
from arcsolver.runtime.jsonio import write_json
from arcsolver.runtime.units import format_seconds

PLAN_NAME = "plan.json"
# plan phase -> the actual phase it is compared with
_PHASES = {"planning (done)": "planning", "prepare (done)": "prepare", "prepare": "prepare",
           "embeddings-only": "embeddings-only", "full fine-tune": "full fine-tune", "prediction": "prediction"}


class PlanLog:
    """plan.json of one run (written by the main process only: `enabled`)."""

    def __init__(self, path: str | Path, window_s: float, enabled: bool = True):
        self.path, self.enabled = Path(path), enabled
        self.data: dict = {"window_s": window_s, "planned": {}, "choices": {}, "actual": {}}

    def plan(self, plan: Plan) -> None:
        """The plan's phases then its prediction reserve, laid end to end from the run's start."""
        t = 0.0
        steps = {"embeddings-only": plan.choices.get("embed_steps"), "full fine-tune": plan.choices.get("full_steps")}
        for name, seconds in [*plan.phases.items(), ("prediction", plan.reserves.get("prediction", 0.0))]:
            phase = _PHASES.get(name, name)
            if phase == "prediction" and not seconds:
                continue
            self.data["planned"][phase] = {"seconds": round(seconds, 3), "start_s": round(t, 3),
                                           "end_s": round(t + seconds, 3),
                                           **({"steps": steps[phase]} if steps.get(phase) else {})}
            t += seconds
        self.data["choices"] = dict(plan.choices)
        self.write()

    def actual(self, phase: str, seconds: float, *, busy_s: float = 0.0, **figures) -> None:
        """A phase ended: its wall seconds, the part of them inside training steps or prediction (`busy_s`), and
        its figures (steps, rows, ...)."""
        self.data["actual"][phase] = {"seconds": round(seconds, 3), "busy_s": round(busy_s, 3), **figures}
        busy = sum(a.get("busy_s", 0.0) for a in self.data["actual"].values())
        self.data["busy_share"] = round(busy / self.data["window_s"], 4) if self.data["window_s"] > 0 else None
        self.write()

    def write(self) -> None:
        if self.enabled:
            write_json(self.path, self.data, indent=True)


def side_by_side(data: dict) -> list[dict]:
    """Rows (phase, planned s, actual s, actual / planned) for every phase planned or run, in run order."""
    planned, actual = data.get("planned", {}), data.get("actual", {})
    rows = []
    for phase in list(planned) + [p for p in actual if p not in planned]:
        p = planned.get(phase, {}).get("seconds")
        a = actual.get(phase, {}).get("seconds")
        rows.append({"phase": phase, "planned_s": p, "actual_s": a,
                     "ratio": round(a / p, 3) if p and a is not None else None})
    return rows


def format_table(data: dict) -> list[str]:
    """The side-by-side table as Markdown lines, with the busy share under it."""
    lines = ["| phase | planned | actual | actual/planned |", "|---|---|---|---|"]
    for r in side_by_side(data):
        p = format_seconds(r["planned_s"]) if r["planned_s"] is not None else "-"
        a = format_seconds(r["actual_s"]) if r["actual_s"] is not None else "-"
        lines.append(f"| {r['phase']} | {p} | {a} | {r['ratio'] if r['ratio'] is not None else '-'} |")
    if data.get("busy_share") is not None:
        lines.append(f"training steps + prediction: {100 * data['busy_share']:.1f}% of the "
                     f"{format_seconds(data['window_s'])} window")
    return lines
