"""Generator layouts as `prepare arc` sources (data/example_lists.py): re-arc folders and JSON Lines, split by the
stated seeded rule, validated like any task, malformed files one line with nothing written."""
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from arcsolver.cli import main
from arcsolver.data.example_lists import load_example_lists
from arcsolver.runtime.errors import InputError


def example(k: int) -> dict:
    return {"input": [[k % 10, 1], [2, 3]], "output": [[3, 2], [1, k % 10]]}


def rearc_folder(root: Path, n: int = 9) -> Path:
    d = root / "re_arc" / "tasks"
    d.mkdir(parents=True)
    for key in ("007bbfb7", "00d62c1b"):
        (d / f"{key}.json").write_text(json.dumps([example(k) for k in range(n)]))
    return root / "re_arc"


def test_rearc_files_are_cut_into_tasks_of_demos_plus_one(tmp_path):
    tasks = load_example_lists(f"rearc:{rearc_folder(tmp_path)}", demos=3, seed=0)
    assert [t.id for t in tasks] == ["007bbfb7.0", "007bbfb7.1", "00d62c1b.0", "00d62c1b.1"]  # 9 // 4 = 2 each
    assert all(len(t.train) == 3 and len(t.test) == 1 and t.has_test_outputs for t in tasks)
    used = [int(p.input[0, 0]) for t in tasks[:2] for p in t.train + t.test]
    assert len(set(used)) == 8  # no example used twice; the 9th (a short tail) left out
    again = load_example_lists(f"rearc:{tmp_path / 're_arc'}", demos=3, seed=0)
    assert [[p.input.tolist() for p in t.train] for t in again] == [[p.input.tolist() for p in t.train] for t in tasks]
    other = load_example_lists(f"rearc:{tmp_path / 're_arc'}", demos=3, seed=1)
    assert [[p.input.tolist() for p in t.train] for t in other] != [[p.input.tolist() for p in t.train] for t in tasks]


def test_jsonl_lines_in_every_accepted_shape(tmp_path):
    f = tmp_path / "heavy.jsonl"
    lines = [{"uid": "barc-a", "examples": [[e["input"], e["output"]] for e in map(example, range(4))]},
             [example(k) for k in range(5)],
             {"id": "plain", "train": [example(1), example(2)], "test": [example(3)]}]
    f.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    tasks = load_example_lists(f"jsonl:{f}", demos=2, seed=0)
    assert [t.id for t in tasks] == ["barc-a.0", "heavy-2.0", "plain"]
    assert [len(t.train) for t in tasks] == [2, 2, 2] and tasks[2].test[0].input.tolist() == [[3, 1], [2, 3]]


@pytest.mark.parametrize("layout, content, words", [
    ("jsonl", '{"examples": [[[[1]], [[2]]], [[[1, 2], [3]], [[1]]]]}\n', "line 1.examples[1].input"),
    ("jsonl", "not json\n", "line 1: not valid JSON"),
    ("jsonl", '{"rows": []}\n', "line 1: expected 'examples'"),
    ("jsonl", '{"examples": [[[[1]], [[12]]]]}\n', "examples[0].output"),
    ("rearc", '{"input": [[1]]}', "expected a list of examples"),
    ("rearc", '[{"input": [[1]]}]', "expected 'input' and 'output'"),
])
def test_malformed_sources_are_one_line_exit_2_nothing_written(tmp_path, layout, content, words):
    if layout == "jsonl":
        src = tmp_path / "bad.jsonl"
        src.write_text(content)
    else:
        src = tmp_path / "gen"
        src.mkdir()
        (src / "abc.json").write_text(content)
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["prepare", "arc", "--train", f"{layout}:{src}", "--num-aug", "1", "--canvas", "10",
                                  "--out", str(out)])
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and str(src) in lines[0], r.stderr
    assert not out.exists()


def test_prepare_reads_both_layouts_and_never_writes_into_them(tmp_path):
    folder = rearc_folder(tmp_path)
    f = tmp_path / "b.jsonl"
    f.write_text(json.dumps({"examples": [example(k) for k in range(8)]}) + "\n")
    r = CliRunner().invoke(main, ["prepare", "arc", "--train", f"rearc:{folder}", "--train", f"jsonl:{f}",
                                  "--demos", "3", "--num-aug", "1", "--canvas", "10", "--out", str(tmp_path / "d")])
    assert r.exit_code == 0, r.output
    meta = json.loads((tmp_path / "d" / "meta.json").read_text())
    assert meta["counts"]["tasks"] == 6  # 2 files x 2 tasks + 8 // 4 = 2 from the line
    r = CliRunner().invoke(main, ["prepare", "arc", "--train", f"rearc:{folder}", "--out", str(folder / "d")])
    assert r.exit_code == 2 and "inside the input" in r.stderr
    with pytest.raises(InputError, match="--demos"):
        load_example_lists(f"rearc:{folder}", demos=0)
