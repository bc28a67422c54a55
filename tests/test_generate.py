"""`arcsolver generate`: every family's rule checked on its own output by an independent check (plain Python loops
over lists, written from the rule's description, never calling the generator's transforms), determinism, the
per-task checks and the command line."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from arcsolver.data.arc_tasks import load_tasks
from arcsolver.runtime.errors import InputError
from arcsolver.data.families import FAMILIES, RuleMismatch
from arcsolver.data.generate import GeneratedTask, generate, generate_task, task_problem


# ----------------------------------------------------------------------------------------------- plain-list tools
def dims(g):
    return len(g), len(g[0])


def blank(h, w, v=0):
    return [[v] * w for _ in range(h)]


def components(g):
    """4-connected same-colour components of non-zero cells: list of (colour, [(r, c), ...])."""
    h, w = dims(g)
    seen = set()
    comps = []
    for r in range(h):
        for c in range(w):
            if g[r][c] and (r, c) not in seen:
                col, stack, cells = g[r][c], [(r, c)], []
                seen.add((r, c))
                while stack:
                    a, b = stack.pop()
                    cells.append((a, b))
                    for x, y in ((a + 1, b), (a - 1, b), (a, b + 1), (a, b - 1)):
                        if 0 <= x < h and 0 <= y < w and (x, y) not in seen and g[x][y] == col:
                            seen.add((x, y))
                            stack.append((x, y))
                comps.append((col, cells))
    return comps


def bbox(cells):
    rs, cs = [r for r, _ in cells], [c for _, c in cells]
    return min(rs), min(cs), max(rs), max(cs)


def crop(g, r0, c0, r1, c1):
    return [row[c0:c1 + 1] for row in g[r0:r1 + 1]]


def transpose(g):
    h, w = dims(g)
    return [[g[r][c] for r in range(h)] for c in range(w)]


def flip_lr(g):
    return [list(reversed(row)) for row in g]


def flip_ud(g):
    return [list(row) for row in reversed(g)]


def counts(g):
    return Counter(v for row in g for v in row if v)


# ----------------------------------------------------------------------------------------------- the checks
def check_flip(i, o, p):
    h, w = dims(i)
    for r in range(h):
        for c in range(w):
            want = i[r][w - 1 - c] if p["axis"] == "lr" else i[h - 1 - r][c]
            assert o[r][c] == want


def check_rotate(i, o, p):
    g = i
    for _ in range(p["k"]):  # one counter-clockwise quarter turn: new[r][c] = old[c][w-1-r]
        h, w = dims(g)
        g = [[g[c][w - 1 - r] for c in range(h)] for r in range(w)]
    assert o == g


def check_transpose(i, o, p):
    h, w = dims(i)
    assert dims(o) == (w, h)
    for r in range(w):
        for c in range(h):
            assert o[r][c] == (i[c][r] if p["diagonal"] == "main" else i[h - 1 - c][w - 1 - r])


def check_translate(i, o, p):
    h, w = dims(i)
    want = blank(h, w)
    for r in range(h):
        for c in range(w):
            if i[r][c]:
                a, b = r + p["dy"], c + p["dx"]
                if p["wrap"]:
                    want[a % h][b % w] = i[r][c]
                elif 0 <= a < h and 0 <= b < w:
                    want[a][b] = i[r][c]
    assert o == want


def check_scale_up(i, o, p):
    k, (h, w) = p["k"], dims(i)
    assert dims(o) == (h * k, w * k)
    assert all(o[r][c] == i[r // k][c // k] for r in range(h * k) for c in range(w * k))


def check_scale_down(i, o, p):
    k, (h, w) = p["k"], dims(o)
    assert dims(i) == (h * k, w * k)
    assert all(i[r][c] == o[r // k][c // k] for r in range(h * k) for c in range(w * k))


def check_crop_object(i, o, p):
    comps = components(i)
    sizes = [len(cells) for _, cells in comps]
    pick = max(sizes) if p["pick"] == "largest" else min(sizes)
    assert sizes.count(pick) == 1
    cells = comps[sizes.index(pick)][1]
    assert o == crop(i, *bbox(cells))


def check_crop_colour(i, o, p):
    cells = [(r, c) for r, row in enumerate(i) for c, v in enumerate(row) if v == p["colour"]]
    assert len(components([[v if v == p["colour"] else 0 for v in row] for row in i])) == 1
    assert o == crop(i, *bbox(cells))


def check_tile(i, o, p):
    (a, b), (h, w) = p["reps"], dims(i)
    assert dims(o) == (a * h, b * w)
    for r in range(a * h):
        for c in range(b * w):
            bi, bj, rr, cc = r // h, c // w, r % h, c % w
            if p["mirror"] and bi % 2:
                rr = h - 1 - rr
            if p["mirror"] and bj % 2:
                cc = w - 1 - cc
            assert o[r][c] == i[rr][cc]


def check_mirror_concat(i, o, p):
    side = p["side"]
    if side == "right":
        want = [row + row[::-1] for row in i]
    elif side == "left":
        want = [row[::-1] + row for row in i]
    elif side == "below":
        want = [list(r) for r in i] + flip_ud(i)
    else:
        want = flip_ud(i) + [list(r) for r in i]
    assert o == want


def check_mirror_complete(i, o, p):
    g, gi = (o, i) if p["axis"] == "lr" else (transpose(o), transpose(i))
    h, w = dims(g)
    assert w % 2 == 0
    assert all(g[r][c] == g[r][w - 1 - c] for r in range(h) for c in range(w))
    assert all(gi[r][c] == g[r][c] for r in range(h) for c in range(w // 2))
    assert all(gi[r][c] == 0 for r in range(h) for c in range(w // 2, w))


def check_recolour_map(i, o, p):
    m = {a: b for a, b in p["map"]}
    assert o == [[m.get(v, v) for v in row] for row in i]


def check_recolour_by_size(i, o, p):
    h, w = dims(i)
    want = [list(r) for r in i]
    for col, cells in components(i):
        assert col == p["source"]
        for r, c in cells:
            want[r][c] = p["table"][str(len(cells))]
    assert o == want


def check_recolour_largest(i, o, p):
    comps = components(i)
    sizes = [len(cells) for _, cells in comps]
    assert sizes.count(max(sizes)) == 1
    want = [list(r) for r in i]
    for r, c in comps[sizes.index(max(sizes))][1]:
        want[r][c] = p["colour"]
    assert o == want


def check_recolour_by_count(i, o, p):
    cnt = counts(i)
    target = max(cnt.values()) if p["pick"] == "most" else min(cnt.values())
    winners = [c for c, n in cnt.items() if n == target]
    assert len(winners) == 1
    assert o == [[winners[0] if v else 0 for v in row] for row in i]


def check_colour_background(i, o, p):
    assert o == [[v if v else p["colour"] for v in row] for row in i]


def check_remove_colour(i, o, p):
    assert o == [[0 if v == p["colour"] else v for v in row] for row in i]


def check_invert(i, o, p):
    assert set(counts(i)) <= {p["colour"]}
    new = set(counts(o))
    assert len(new) <= 1
    assert all((i[r][c] == 0) == (o[r][c] != 0) for r in range(len(i)) for c in range(len(i[0])))


def check_gravity(i, o, p):
    d = p["direction"]
    # read every lane in the fall direction: the cells keep their order and pack against the far end
    lanes_i = {"down": transpose(i), "up": [r[::-1] for r in transpose(i)], "right": i,
               "left": [r[::-1] for r in i]}[d]
    lanes_o = {"down": transpose(o), "up": [r[::-1] for r in transpose(o)], "right": o,
               "left": [r[::-1] for r in o]}[d]
    for li, lo in zip(lanes_i, lanes_o):
        cells = [v for v in li if v]
        assert lo == [0] * (len(li) - len(cells)) + cells


def check_fill_enclosed(i, o, p):
    h, w = dims(i)
    outside = set()
    stack = [(r, c) for r in range(h) for c in range(w) if (r in (0, h - 1) or c in (0, w - 1)) and i[r][c] == 0]
    outside.update(stack)
    while stack:
        a, b = stack.pop()
        for x, y in ((a + 1, b), (a - 1, b), (a, b + 1), (a, b - 1)):
            if 0 <= x < h and 0 <= y < w and i[x][y] == 0 and (x, y) not in outside:
                outside.add((x, y))
                stack.append((x, y))
    for r in range(h):
        for c in range(w):
            enclosed = i[r][c] == 0 and (r, c) not in outside
            assert o[r][c] == (p["fill"] if enclosed else i[r][c])


def check_hollow(i, o, p):
    h, w = dims(i)
    for r in range(h):
        for c in range(w):
            v = i[r][c]
            inner = v and all(0 <= r + a < h and 0 <= c + b < w and i[r + a][c + b] == v
                              for a in (-1, 0, 1) for b in (-1, 0, 1))
            assert o[r][c] == (p["inside"] if inner else v)


_STEP = {"down": (1, 0), "up": (-1, 0), "right": (0, 1), "left": (0, -1)}


def check_lines_to_border(i, o, p):
    h, w = dims(i)
    want = blank(h, w)
    dr, dc = _STEP[p["direction"]]
    for r in range(h):
        for c in range(w):
            if i[r][c]:
                a, b = r, c
                while 0 <= a < h and 0 <= b < w:
                    want[a][b] = i[r][c]
                    a, b = a + dr, b + dc
    assert o == want


def check_lines_cross(i, o, p):
    h, w = dims(i)
    (r, c), = [(r, c) for r in range(h) for c in range(w) if i[r][c]]
    v = i[r][c]
    for a in range(h):
        for b in range(w):
            on = (a == r and p["lines"] in ("row", "both")) or (b == c and p["lines"] in ("column", "both"))
            assert o[a][b] == (v if on or (a, b) == (r, c) else 0)


def check_diagonals(i, o, p):
    h, w = dims(i)
    (r, c), = [(r, c) for r in range(h) for c in range(w) if i[r][c]]
    want = blank(h, w)
    steps = {"main": [(1, 1), (-1, -1)], "anti": [(1, -1), (-1, 1)]}
    dirs = steps["main"] + steps["anti"] if p["which"] == "both" else steps[p["which"]]
    for dr, dc in dirs:
        a, b = r, c
        while 0 <= a < h and 0 <= b < w:
            want[a][b] = i[r][c]
            a, b = a + dr, b + dc
    assert o == want


def check_connect_pairs(i, o, p):
    gi, go = (i, o) if p["axis"] == "row" else (transpose(i), transpose(o))
    for li, lo in zip(gi, go):
        dots = [c for c, v in enumerate(li) if v]
        want = list(li)
        if dots:
            assert len(dots) == 2 and li[dots[0]] == li[dots[1]]
            for c in range(dots[0] + 1, dots[1]):
                want[c] = p["line"]
        assert lo == want


def check_copy_object(i, o, p):
    h, w = dims(i)
    want = [list(r) for r in i]
    for r in range(h):
        for c in range(w):
            if i[r][c]:
                want[r + p["dy"]][c + p["dx"]] = i[r][c]
    assert o == want


def check_denoise(i, o, p):
    h, w = dims(i)
    for r in range(h):
        for c in range(w):
            v = i[r][c]
            alone = v and not any(0 <= x < h and 0 <= y < w and i[x][y] == v
                                  for x, y in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)))
            assert o[r][c] == (0 if alone else v)
            if alone:
                assert v == p["noise"]


def check_extend_pattern(i, o, p):
    gi, go = (i, o) if p["axis"] == "rows" else (transpose(i), transpose(o))
    period = next(k for k in range(1, len(go) + 1) if all(go[r] == go[r - k] for r in range(k, len(go))))
    assert 2 <= period and 2 * period <= len(go)
    assert gi[:2 * period] == go[:2 * period]
    assert all(v == 0 for row in gi[2 * period:] for v in row)


def check_count_bar(i, o, p):
    n = sum(v == p["colour"] for row in i for v in row)
    assert dims(o) == ((n, 1) if p["vertical"] else (1, n))
    assert all(v == p["colour"] for row in o for v in row)


def check_majority_colour(i, o, p):
    ranked = counts(i).most_common()
    if p["pick"] == "least":
        ranked = ranked[::-1]
    (top, n), (_, n2), *_ = ranked
    assert n != n2
    assert o == blank(p["k"], p["k"], top)


def check_sort_bars(i, o, p):
    h, w = dims(i)

    def bars(g):
        out = []
        for c in range(w):
            col = [g[r][c] for r in range(h)]
            ht = sum(1 for v in col if v)
            assert col == [0] * (h - ht) + [col[-1]] * ht  # a solid one-colour bar standing on the floor
            out.append((ht, col[-1]))
        return out

    bi, bo = bars(i), bars(o)
    slots = [c for c in range(w) if bi[c][0]]
    assert [c for c in range(w) if bo[c][0]] == slots
    want = sorted((bi[c] for c in slots), key=lambda x: x[0], reverse=p["order"] == "descending")
    assert [bo[c] for c in slots] == want


def check_bounding_box(i, o, p):
    want = [list(r) for r in i]
    for _, cells in components(i):
        r0, c0, r1, c1 = bbox(cells)
        for r in range(r0, r1 + 1):
            for c in range(c0, c1 + 1):
                if i[r][c] == 0:
                    want[r][c] = p["colour"]
    assert o == want


def check_keep_largest(i, o, p):
    comps = components(i)
    sizes = [len(cells) for _, cells in comps]
    pick = max(sizes) if p["pick"] == "largest" else min(sizes)
    assert sizes.count(pick) == 1
    want = blank(*dims(i))
    for r, c in comps[sizes.index(pick)][1]:
        want[r][c] = i[r][c]
    assert o == want


def check_frame(i, o, p):
    col = p["colour"]
    h, w = dims(i)
    if p["pad"]:
        assert o == [[col] * (w + 2)] + [[col] + list(row) + [col] for row in i] + [[col] * (w + 2)]
    else:
        for r in range(h):
            for c in range(w):
                assert o[r][c] == (col if r in (0, h - 1) or c in (0, w - 1) else i[r][c])


def check_halves_logic(i, o, p):
    g = transpose(i) if p["vertical"] else i
    out = transpose(o) if p["vertical"] else o
    h, w = dims(g)
    div = [c for c in range(w) if all(g[r][c] == p["colours"][2] for r in range(h))]
    assert div == [w // 2]
    ops = {"and": lambda a, b: a and b, "or": lambda a, b: a or b, "xor": lambda a, b: a != b,
           "nor": lambda a, b: not (a or b)}
    for r in range(h):
        for c in range(w // 2):
            on = ops[p["op"]](g[r][c] != 0, g[r][c + w // 2 + 1] != 0)
            assert out[r][c] == (p["colours"][3] if on else 0)


CHECKS = {name[len("check_"):]: fn for name, fn in globals().items() if name.startswith("check_")}


# ----------------------------------------------------------------------------------------------- tests
def test_at_least_30_families_in_every_group_and_every_one_has_a_check():
    assert len(FAMILIES) >= 30
    assert {f.group for f in FAMILIES.values()} == {"geometry", "colour", "objects", "counting"}
    assert sorted(CHECKS) == sorted(FAMILIES)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_rule_holds_on_its_own_output(name):
    check = CHECKS[name]
    seen_params = set()
    for max_size in (6, 12, 30):
        for index in range(6):
            task = generate_task(name, seed=7, index=index, max_size=max_size)
            assert task_problem(task, max_size, FAMILIES[name].identity_ok) is None
            assert len(task.train) >= 2 and len(task.test) == 1
            seen_params.add(repr(task.params))
            for a, b in task.train + task.test:
                assert max(a.shape) <= max_size and max(b.shape) <= max_size
                check(a.tolist(), b.tolist(), task.params)
    assert len(seen_params) >= 3, "tasks of one family must differ in their rule parameters"


def test_a_check_catches_a_wrong_output():
    """The checks can fail: a corrupted output of each family is rejected."""
    for name, check in CHECKS.items():
        task = generate_task(name, seed=1, index=0, max_size=10)
        a, b = task.test[0]
        bad = b.copy()
        bad[0, 0] = (bad[0, 0] + 1) % 10
        with pytest.raises((AssertionError, ValueError, StopIteration)):
            check(a.tolist(), bad.tolist(), task.params)


def test_same_seed_same_bytes_and_tasks_do_not_depend_on_the_other_families(tmp_path):
    generate("all", 3, 12, 5, tmp_path / "a")
    generate("all", 3, 12, 5, tmp_path / "b")
    generate("gravity,flip", 3, 12, 5, tmp_path / "c")
    generate("all", 3, 12, 6, tmp_path / "d")
    files = sorted(p.name for p in (tmp_path / "a").glob("[!.]*"))
    assert len(files) == 3 * len(FAMILIES)
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    for f in (tmp_path / "c").glob("[!.]*"):
        assert f.read_bytes() == (tmp_path / "a" / f.name).read_bytes()
    other = {p.read_bytes() for p in (tmp_path / "d").glob("[!.]*")}
    assert not other & {(tmp_path / "a" / f).read_bytes() for f in files}


def test_written_tasks_load_as_ordinary_arc_tasks_and_are_distinct(tmp_path):
    generate("all", 4, 8, 0, tmp_path / "g")
    tasks = load_tasks(str(tmp_path / "g"), require_outputs=True)
    assert len(tasks) == 4 * len(FAMILIES)
    assert len({repr(t.to_json()) for t in tasks}) == len(tasks)
    for t in tasks:
        assert len(t.train) >= 2 and t.has_test_outputs
        if not FAMILIES[t.id.rsplit("-", 2)[0]].identity_ok:
            assert not any(p.input.shape == p.output.shape and (p.input == p.output).all() for p in t.test)


def _task(pairs, n_train):
    return GeneratedTask("t", "x", {}, pairs[:n_train], pairs[n_train:])


def test_task_checks_refuse_bad_tasks():
    g = np.array([[1, 0], [0, 2]], dtype=np.uint8)
    h = np.array([[2, 0], [0, 1]], dtype=np.uint8)
    k = np.array([[3]], dtype=np.uint8)
    ok = [(g, h), (h, g), (k, g)]
    assert task_problem(_task(ok, 2), 6, False) is None
    assert "fewer than 2" in task_problem(_task(ok, 1), 6, False)
    assert "equals input" in task_problem(_task([(g, g), (h, g), (k, g)], 2), 6, False)
    assert task_problem(_task([(g, g), (h, g), (k, g)], 2), 6, True) is None
    assert "repeated input" in task_problem(_task([(g, h), (g, k), (k, g)], 2), 6, False)
    assert "outside" in task_problem(_task([(g, h), (h, np.zeros((7, 1), np.uint8)), (k, g)], 2), 6, False)
    assert "colour" in task_problem(_task([(g, h), (h, g + 9), (k, g)], 2), 6, False)


@pytest.mark.parametrize("args, field", [
    (["--families", "flip,nope"], "--families"),
    (["--families", ""], "--families"),
    (["--tasks-per-family", "0"], "--tasks-per-family"),
    (["--max-size", "5"], "--max-size"),
    (["--max-size", "31"], "--max-size"),
    (["--seed", "-1"], "--seed"),
])
def test_bad_arguments_one_line_exit_2_nothing_written(tmp_path, args, field):
    out = tmp_path / "g"
    r = subprocess.run([sys.executable, "-m", "arcsolver.cli", "generate", "--out", str(out), *args],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and field in r.stderr and "Traceback" not in r.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_refuses_a_non_empty_out_and_keeps_it(tmp_path):
    out = tmp_path / "g"
    out.mkdir()
    (out / "mine.json").write_text("{}")
    with pytest.raises(InputError, match="not written by arcsolver"):
        generate("flip", 1, 8, 0, out)
    assert [p.name for p in out.iterdir()] == ["mine.json"]


def test_cli_writes_tasks_and_lists_families(tmp_path):
    out = tmp_path / "g"
    r = subprocess.run([sys.executable, "-m", "arcsolver.cli", "generate", "--families", "flip,gravity",
                        "--tasks-per-family", "2", "--max-size", "8", "--seed", "1", "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.glob("[!.]*")) == ["flip-1-0000.json", "flip-1-0001.json",
                                                      "gravity-1-0000.json", "gravity-1-0001.json"]
    r = subprocess.run([sys.executable, "-m", "arcsolver.cli", "generate", "--list"], capture_output=True, text=True)
    assert r.returncode == 0 and len(r.stdout.strip().splitlines()) == len(FAMILIES)


def test_a_failure_midway_leaves_nothing(tmp_path, monkeypatch):
    import arcsolver.data.generate as gen
    calls = {"n": 0}
    real = gen.generate_task

    def failing(*a, **k):
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("boom")
        return real(*a, **k)

    monkeypatch.setattr(gen, "generate_task", failing)
    with pytest.raises(RuntimeError):
        gen.generate("all", 2, 8, 0, tmp_path / "g")
    assert list(tmp_path.iterdir()) == []


def test_every_family_states_its_identifiability_rule():
    for fam in FAMILIES.values():
        assert "Implied when:" in fam.rule and len(fam.rule) > 60, fam.name


def test_a_test_the_demonstrations_do_not_imply_is_redrawn_deterministically(monkeypatch):
    real = FAMILIES["flip"]

    def run():
        refused = []

        def implied(params, train, test):
            if len(refused) < 3:
                refused.append(test[0].tobytes())
                return "refused for the test"
            return real.implied(params, train, test)

        monkeypatch.setitem(FAMILIES, "flip", dataclasses.replace(real, implied=implied))
        return generate_task("flip", seed=3, index=0, max_size=8), refused

    task, refused = run()
    again, _ = run()
    assert len(refused) == 3 and task.test[0][0].tobytes() not in refused
    assert repr(task.to_json()) == repr(again.to_json())


def test_a_family_whose_test_is_never_implied_stops_with_a_clear_error(monkeypatch):
    monkeypatch.setitem(FAMILIES, "flip", dataclasses.replace(FAMILIES["flip"], implied=lambda *a: "never"))
    with pytest.raises(RuntimeError, match="family flip made no valid task"):
        generate_task("flip", seed=0, index=0, max_size=8)


def test_a_family_whose_pairs_break_its_own_rule_is_a_bug_not_a_redraw(monkeypatch):
    real = FAMILIES["gravity"]

    def wrong(rng, params, max_size):
        g, out = real.pair(rng, params, max_size)
        return g, out[::-1].copy()

    monkeypatch.setitem(FAMILIES, "gravity", dataclasses.replace(real, pair=wrong))
    with pytest.raises(RuleMismatch):
        generate_task("gravity", seed=0, index=0, max_size=8)
