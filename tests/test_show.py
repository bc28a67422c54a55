import json
import re

import numpy as np
import pytest
from PIL import Image

from arcsolver.data import colors
from arcsolver.data.arc_tasks import Pair, Task
from arcsolver.data.encoding import encode_grid
from arcsolver.runtime.errors import InputError
from arcsolver.inference.show import (RIGHT, WRONG, render_report_html, render_task_png, show_cmd,
                                      solved_tests)
from arcsolver.inference.submission import fallback_submission
from arcsolver.inference.vote import VoteBook, candidates_json


def g(*rows):
    return np.array(rows, dtype=np.uint8)


def make_tasks() -> list[Task]:
    rng = np.random.default_rng(3)
    big = rng.integers(0, 10, size=(30, 30)).astype(np.uint8)
    return [
        Task("t-small", [Pair(g([1, 0]), g([0, 1])), Pair(g([2]), g([2]))],
             [Pair(g([3, 0], [0, 3]), g([0, 3], [3, 0]))]),
        Task("t/odd id", [Pair(big, big.T.copy())], [Pair(big[:5, :7], big[:5, :7].T.copy()), Pair(g([4]), g([5]))]),
        Task("t-unknown", [Pair(g([5, 5]), g([6, 6]))], [Pair(g([7]), None)]),
    ]


def colour_pixels(img: Image.Image, rgb) -> int:
    return int((np.asarray(img.convert("RGB")) == np.array(rgb, np.uint8)).all(axis=-1).sum())


def test_task_png_is_a_plausible_image(tmp_path):
    task = make_tasks()[1]
    path = render_task_png(task, tmp_path / "task.png")
    with Image.open(path) as img:
        assert img.format == "PNG"
        w, h = img.size
        # Three 30-wide-ish grids in a row and three rows of panels: hundreds of pixels, not thousands.
        assert 300 < w < 2000 and 300 < h < 3000
        assert colour_pixels(img, RIGHT) == 0 and colour_pixels(img, WRONG) == 0  # no attempts, no verdicts
        # Every palette colour of the big random grid is drawn.
        for rgb in [(0, 0, 0), (0, 116, 217), (255, 65, 54), (135, 12, 37)]:
            assert colour_pixels(img, rgb) > 0


def test_attempts_get_right_and_wrong_frames(tmp_path):
    task = make_tasks()[0]
    right = {"attempt_1": [[0, 3], [3, 0]], "attempt_2": [[1]]}
    with Image.open(render_task_png(task, tmp_path / "a.png", [right])) as img:
        assert colour_pixels(img, RIGHT) > 50 and colour_pixels(img, WRONG) > 50
        size_with = img.size
    all_wrong = {"attempt_1": [[1]], "attempt_2": [[2, 2]]}
    with Image.open(render_task_png(task, tmp_path / "b.png", [all_wrong])) as img:
        assert colour_pixels(img, RIGHT) == 0 and colour_pixels(img, WRONG) > 100
    with Image.open(render_task_png(task, tmp_path / "c.png")) as img:
        assert img.size[0] < size_with[0]  # the attempts add panels to the right


def test_solved_tests_counts_test_inputs_one_of_the_two_attempts_answers():
    small, odd, unknown = make_tasks()
    assert solved_tests(small, [{"attempt_1": [[1]], "attempt_2": [[0, 3], [3, 0]]}]) == 1
    assert solved_tests(small, [{"attempt_1": [[1]], "attempt_2": [[2]]}]) == 0
    assert solved_tests(odd, [{"attempt_1": odd.test[0].output.tolist()}, {"attempt_2": [[5]]}]) == 2
    assert solved_tests(unknown, [{"attempt_1": [[7]]}]) == 0 and solved_tests(small, None) == 0


def test_invalid_attempt_and_unknown_truth_still_render(tmp_path):
    task = make_tasks()[2]
    path = render_task_png(task, tmp_path / "u.png", [{"attempt_1": [[1, 2], [3]], "attempt_2": [[1]]}])
    with Image.open(path) as img:
        assert img.size[0] > 100
        assert colour_pixels(img, RIGHT) == 0  # no truth: no verdict
    # A VoteBook works as the source of attempts too.
    book = VoteBook()
    book.add(["t-small"], np.array([0]), encode_grid(g([0, 3], [3, 0]))[None], np.array([0]),
             colors.IDENTITY[None], np.array([1.0]))
    with Image.open(render_task_png(make_tasks()[0], tmp_path / "v.png", book)) as img:
        assert colour_pixels(img, RIGHT) > 50


def test_html_report_references_every_task(tmp_path):
    tasks = make_tasks()
    sub = fallback_submission(tasks)
    sub["t-small"][0]["attempt_2"] = [[0, 3], [3, 0]]
    index = render_report_html(tasks, sub, tmp_path / "report")
    page = index.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for t in tasks:
        assert t.id in page
    imgs = re.findall(r'src="img/([^"]+)"', page)
    assert len(imgs) == len(tasks)
    for name in imgs:
        with Image.open(tmp_path / "report" / "img" / name) as img:
            assert img.format == "PNG"
    assert "1/1 solved" in page and "0/2 solved" in page and "no truth" in page
    assert "fully solved 1 of 2" in page


def test_html_report_from_candidates_json(tmp_path):
    tasks = make_tasks()
    book = VoteBook()
    book.add(["t/odd id"] * 2, np.array([1, 1]), np.stack([encode_grid(g([5]))] * 2), np.zeros(2, int),
             np.stack([colors.IDENTITY] * 2), np.zeros(2))
    index = render_report_html(tasks, candidates_json(book), tmp_path / "r")
    page = index.read_text()
    assert "1/2 solved" in page and page.count("no prediction") >= 2


def test_show_cmd_single_task_report_and_errors(tmp_path):
    tasks = make_tasks()
    folder = tmp_path / "tasks"
    folder.mkdir()
    for t in tasks[:1] + tasks[2:]:
        (folder / f"{t.id}.json").write_text(json.dumps(t.to_json()))
    sub_path = tmp_path / "submission.json"
    sub_path.write_text(json.dumps(fallback_submission([tasks[0], tasks[2]])))

    msg = show_cmd(str(folder), "t-small", sub_path, tmp_path / "one.png")
    assert "one.png" in msg and (tmp_path / "one.png").is_file()
    msg = show_cmd(str(folder), "t-unknown", None, tmp_path / "pics")
    assert (tmp_path / "pics" / "t-unknown.png").is_file()
    msg = show_cmd(str(folder), None, sub_path, tmp_path / "html")
    assert "2 tasks" in msg and (tmp_path / "html" / "index.html").is_file()

    with pytest.raises(InputError, match="no task 'nope'"):
        show_cmd(str(folder), "nope", None, tmp_path / "x.png")
    sub_path.write_text("[]")
    with pytest.raises(InputError, match="submission.json"):
        show_cmd(str(folder), None, sub_path, tmp_path / "html2")
    sub_path.write_text(json.dumps({"zzz": []}))
    with pytest.raises(InputError, match="none of its task ids"):
        show_cmd(str(folder), None, sub_path, tmp_path / "html3")
