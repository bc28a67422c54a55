"""One clock and one absolute deadline for a whole run, and the plan that shows where the time goes.

Why one: layers that each start their own stopwatch and keep their own safety margin stack those margins invisibly,
and no two of them agree on when the run ends. So the deadline is computed once (the notebook's, or `--deadline`, or
`--time-budget` = process start + budget) and passed down as a `Deadline`; a layer that needs to finish earlier (a
training phase before prediction) derives a sub-deadline from it with a *named* reserve, and every reserve is listed
in a `Plan` that is printed and saved.

The clock is injectable (`Deadline.clock`): production reads `time.time()`; tests and benchmarks pass a
`ManualClock` or a `TickingClock` so that budget logic is checked in simulated time, never against the machine's
speed. Every timing that feeds a decision (step times, batch times) is read from the same clock.

`StepPlanner` is the training loop's part of this: from the first timed steps (the very first step warms up and is
not trusted) it predicts how many steps fit before the deadline minus its reserves, so that the LR schedule can be
sized to the steps that will actually run, and it says when to stop (before a step that would cross the line).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Protocol

from arcsolver.runtime.units import format_seconds


class Clock(Protocol):
    def now(self) -> float: ...


class SystemClock:
    """Wall-clock epoch seconds."""

    def now(self) -> float:
        return time.time()


class ManualClock:
    """Simulated time that moves only when told to (`advance`)."""

    def __init__(self, start: float = 1_000_000.0):
        self.t = float(start)

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += float(seconds)


class TickingClock(ManualClock):
    """Simulated time that advances by `tick` seconds every time it is read: a loop that reads the clock a fixed
    number of times per step sees a fixed step time, whatever the machine's speed."""

    def __init__(self, tick: float, start: float = 1_000_000.0):
        super().__init__(start)
        self.tick = float(tick)

    def now(self) -> float:
        self.t += self.tick
        return self.t


SYSTEM_CLOCK = SystemClock()


@dataclass(frozen=True)
class Deadline:
    """An absolute moment (epoch seconds on `clock`), or no limit (`at` None)."""

    at: float | None = None
    clock: Clock = SYSTEM_CLOCK

    @classmethod
    def after(cls, seconds: float | None, start: float | None = None, clock: Clock = SYSTEM_CLOCK) -> "Deadline":
        """`seconds` after `start` (default: now); no limit when `seconds` is None."""
        if seconds is None:
            return cls(None, clock)
        return cls((clock.now() if start is None else start) + float(seconds), clock)

    @classmethod
    def resolve(cls, deadline_at: float | None, budget_s: float | None, started_at: float,
                clock: Clock = SYSTEM_CLOCK) -> "Deadline":
        """`--deadline` and `--time-budget` (sugar for started_at + budget) together: the earlier one wins."""
        cands = [x for x in (deadline_at, None if budget_s is None else started_at + budget_s) if x is not None]
        return cls(min(cands) if cands else None, clock)

    @property
    def limited(self) -> bool:
        return self.at is not None

    def now(self) -> float:
        return self.clock.now()

    def remaining(self) -> float:
        return math.inf if self.at is None else self.at - self.clock.now()

    def passed(self) -> bool:
        return self.remaining() <= 0

    def earlier_by(self, seconds: float) -> "Deadline":
        """A sub-deadline `seconds` before this one (for a phase that must leave room for what follows)."""
        return self if self.at is None else Deadline(self.at - float(seconds), self.clock)

    def within(self, seconds: float) -> "Deadline":
        """The earlier of this deadline and `seconds` from now (a phase given a share of the time left)."""
        return self.min(self.clock.now() + float(seconds))

    def min(self, other_at: float | None) -> "Deadline":
        if other_at is None:
            return self
        return Deadline(other_at if self.at is None else min(self.at, other_at), self.clock)

    def describe(self) -> str:
        if self.at is None:
            return "no deadline"
        return f"deadline in {format_seconds(self.remaining())} (epoch {self.at:.0f})"


@dataclass
class Plan:
    """Where the time until a deadline goes: named phases (estimated seconds) and named reserves (seconds kept
    free for what must happen after them), plus the choices made. Printed as one line, saved as a dict."""

    what: str
    deadline_in_s: float
    phases: dict[str, float] = field(default_factory=dict)
    reserves: dict[str, float] = field(default_factory=dict)
    choices: dict[str, object] = field(default_factory=dict)

    def describe(self) -> str:
        def part(d: dict[str, float]) -> str:
            return ", ".join(f"{k} {format_seconds(v)}" for k, v in d.items())
        bits = [f"{self.what} plan: {format_seconds(self.deadline_in_s)} to the deadline"]
        if self.phases:
            bits.append(f"phases: {part(self.phases)}")
        if self.reserves:
            bits.append(f"reserves: {part(self.reserves)}")
        if self.choices:
            bits.append(", ".join(f"{k}={v}" for k, v in self.choices.items()))
        return "; ".join(bits)

    def to_dict(self) -> dict:
        return {"what": self.what, "deadline_in_s": self.deadline_in_s, "phases": dict(self.phases),
                "reserves": dict(self.reserves), "choices": dict(self.choices)}


class StepPlanner:
    """How many training steps fit before `deadline` minus `reserves`, from timed steps.

    `observe(seconds)` after every step. Until two steps are timed the estimate is `prior_step_s` (a throughput
    estimate, may be None); then the median of the timed steps after the first (which includes warm-up). `fit(step)`
    is the step count at which the run should end; `should_stop()` is True when the next step would end inside the
    reserves, with a margin of half a step for the noise of a shared machine.
    """

    WINDOW = 20  # recent steps in the estimate: a shared machine's speed drifts over minutes
    RECENT = 5

    def __init__(self, deadline: Deadline, reserves: dict[str, float] | None = None,
                 prior_step_s: float | None = None, margin_steps: float = 0.5):
        self.deadline = deadline
        self.reserves = dict(reserves or {})
        self.prior_step_s = prior_step_s
        self.margin_steps = margin_steps
        self.overhead_per_step = 0.0  # periodic work between steps (evaluations, checkpoints), amortized
        self.times: list[float] = []

    def observe(self, seconds: float) -> None:
        self.times.append(float(seconds))

    @property
    def calibrated(self) -> bool:
        return len(self.times) >= 2

    def step_s(self) -> float | None:
        if len(self.times) >= 2:
            # The median of the recent steps, or of the last few when those are slower: a machine that slows down
            # is believed at once, one that speeds up only when it has stayed fast.
            recent = sorted(self.times[1:][-self.WINDOW:])
            last = sorted(self.times[1:][-self.RECENT:])
            return max(recent[len(recent) // 2], last[len(last) // 2])
        if self.times and self.prior_step_s is None:
            return self.times[0]
        return self.prior_step_s

    def usable_s(self) -> float:
        """Seconds left for steps: time to the deadline minus the reserves."""
        return self.deadline.remaining() - sum(self.reserves.values())

    def fit(self, step: int) -> int | None:
        """The step number at which to stop: `step` + the whole steps that fit (None: no deadline/no estimate)."""
        s = self.step_s()
        if not self.deadline.limited or not s:
            return None
        room = self.usable_s() - self.margin_steps * s
        return step + max(0, int(room // (s + self.overhead_per_step)))

    def should_stop(self) -> bool:
        s = self.step_s()
        if not self.deadline.limited:
            return False
        if not s:
            return self.usable_s() <= 0
        return self.usable_s() < (1.0 + self.margin_steps) * s

    def plan(self, what: str, step: int, phases: dict[str, float] | None = None, **choices) -> Plan:
        s = self.step_s() or 0.0
        end = self.fit(step)
        ph = dict(phases or {})
        if end is not None:
            ph[f"{end - step} steps x {s:.3g} s"] = (end - step) * s
        return Plan(what, self.deadline.remaining(), ph, dict(self.reserves), dict(choices))
