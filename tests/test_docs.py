"""The repository explains itself: what the code cites lives in the repository's own docs/.

Docstrings and comments point to `docs/<name>.md` (optionally with a section title in quotes); a reader with only a
clone must be able to follow every such pointer. Notes kept outside the repository must not be cited at all.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCANNED = ["arcsolver", "benchmarks", "runs", "tests", "README.md"]
CITING = ["arcsolver", "README.md"]  # where every cited docs/<name>.md must exist

# Built from pieces so that this file does not match its own patterns.
OUTSIDE_NOTE = re.compile("trm-" + r"reference\.md")
BARE_KAGGLE_NOTE = re.compile(r"(?<!docs/)\b" + "kaggle" + r"\.md")
# A repository docs path: not part of a longer path or URL (e.g. another project's docs/kernels.md).
DOC_PATH = re.compile(r"(?<![\w/.-])docs/([\w.-]+\.md)(?:,\s*'([^']+)')?")


def text_files(roots: list[str]) -> list[tuple[Path, str]]:
    out = []
    for root in roots:
        p = REPO / root
        for f in sorted([p] if p.is_file() else p.rglob("*")):
            if not f.is_file() or "__pycache__" in f.parts:
                continue
            try:
                out.append((f, f.read_text(encoding="utf-8")))
            except UnicodeDecodeError:  # pictures and other binary results
                continue
    return out


def outside_citations(text: str) -> list[str]:
    """The fragments of `text` that cite notes which are not in the repository."""
    return [m.group(0) for m in OUTSIDE_NOTE.finditer(text)] + [m.group(0) for m in BARE_KAGGLE_NOTE.finditer(text)]


def broken_doc_pointers(text: str, docs: Path) -> list[str]:
    """Pointers `docs/<name>.md[, 'Section']` in `text` whose file, or whose section heading, does not exist."""
    problems = []
    for m in DOC_PATH.finditer(text):
        name, section = m.group(1), m.group(2)
        doc = docs / name
        if not doc.is_file():
            problems.append(f"docs/{name} does not exist")
            continue
        if section:
            headings = [line.lstrip("#").strip() for line in doc.read_text(encoding="utf-8").splitlines()
                        if line.startswith("#")]
            if not any(h.startswith(section) for h in headings):
                problems.append(f"docs/{name} has no section starting with {section!r}")
    return problems


def test_the_checks_catch_what_they_are_for(tmp_path):
    (tmp_path / "a.md").write_text("# A\n\n## Run limits\n")
    assert outside_citations("see " + "trm-" + "reference.md §1") == ["trm-" + "reference.md"]
    assert outside_citations("(" + "kaggle" + ".md §1.1)") == ["kaggle" + ".md"]
    assert outside_citations("(docs/" + "kaggle" + ".md, 'Run limits')") == []
    assert broken_doc_pointers("docs/a.md, 'Run limits' and docs/a.md", tmp_path) == []
    assert broken_doc_pointers("docs/b.md", tmp_path) == ["docs/b.md does not exist"]
    assert broken_doc_pointers("docs/a.md, 'Deadlines'", tmp_path) == ["docs/a.md has no section starting with "
                                                                       "'Deadlines'"]
    assert broken_doc_pointers("Kaggle/kaggle-cli/docs/kernels.md", tmp_path) == []


def test_no_citation_of_notes_outside_the_repository():
    found = [f"{f.relative_to(REPO)}: {frag}" for f, text in text_files(SCANNED) for frag in outside_citations(text)]
    assert not found, "cite docs/ instead:\n" + "\n".join(found)


def test_every_cited_doc_exists():
    cited = {m.group(1) for _, text in text_files(CITING) for m in DOC_PATH.finditer(text)}
    assert {"trm.md", "design.md", "kaggle-format.md"} <= cited  # the package and README do point to them
    broken = [f"{f.relative_to(REPO)}: {p}" for f, text in text_files(CITING)
              for p in broken_doc_pointers(text, REPO / "docs")]
    assert not broken, "\n".join(broken)
