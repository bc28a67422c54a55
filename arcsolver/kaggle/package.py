"""Package a checkpoint for Kaggle: one folder holding a dataset and an offline notebook, ready to push.

    OUT/arcsolver-package.json      what was packaged (marks the folder as ours, so a re-run may replace it)
    OUT/dataset/                    -> kaggle datasets create|version -p OUT/dataset --dir-mode zip
        dataset-metadata.json
        arcsolver-kaggle.json       marker the notebook finds the dataset by: wheel name, checkpoint folder
        arcsolver-<version>-py3-none-any.whl
        checkpoint/                 model.safetensors, ema.safetensors (if any), config.json
        wheels/*.whl                optional extra wheels for modules the Kaggle image lacks
    OUT/kernel/                     -> kaggle kernels push -p OUT/kernel
        kernel-metadata.json
        <kernel-slug>.ipynb         generated from notebook_template.py (beside this module)

Notable choices:
* The wheel is built from a copy of the checkout (no build/ or egg-info litter in the working tree), without build
  isolation or dependencies, so packaging works offline; torch and the rest come from the Kaggle image.
* `train_state.pt` is left out: optimizer state is useless for inference and would double the upload. Files are
  hard-linked when possible (checkpoints are never modified in place), copied otherwise.
* The notebook template keeps one config line (`ARCSOLVER_CONFIG = {}`) that is replaced by this package's values
  (competition, dataset, wheel, deadline, margin); every other line is generic and reviewable in
  `arcsolver/kaggle/notebook_template.py` (package data: an installed wheel packages too).
* The metadata rules of kaggle.md §2 live in `validate_dataset_metadata` / `validate_kernel_metadata` (lists of
  problems, like `validate_submission`), shared with kaggle.upload. `enable_internet` is always written, as "false":
  the kaggle client treats a missing key as true, and code competitions refuse notebooks with internet.
* The owner comes from the argument, else `$KAGGLE_USERNAME`, else `kaggle.json`, read as plain JSON: importing the
  kaggle module would try to authenticate (network) or exit the process.
"""

from __future__ import annotations

import ast
import datetime as _dt
import os
import pprint
import re
import shutil
import subprocess
import sys
import tempfile
import unicodedata
import zipfile
from pathlib import Path
from typing import Any, Mapping, Sequence

from arcsolver.model.checkpoint import resolve as resolve_checkpoint
from arcsolver.runtime.errors import InputError
from arcsolver.runtime.jsonio import atomic_dir, atomic_write_bytes, read_json, write_json
from arcsolver.kaggle.runner import DEFAULT_MARGIN_S, MARKER_NAME, RUN_LIMIT_S, WEIGHTS_NAME, checkpoint_problem

REPO = Path(__file__).resolve().parents[2]  # the checkout, when arcsolver runs from one
TEMPLATE = Path(__file__).resolve().parent / "notebook_template.py"
CONFIG_LINE = "ARCSOLVER_CONFIG: dict = {}  # filled in by arcsolver.kaggle.package"

PACKAGE_MARKER = "arcsolver-package.json"
DATASET_METADATA = "dataset-metadata.json"
KERNEL_METADATA = "kernel-metadata.json"
CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_FILES = (WEIGHTS_NAME, "ema.safetensors", "config.json")  # what inference needs; no train_state.pt
REQUIRED_CHECKPOINT_FILES = (WEIGHTS_NAME, "config.json")

# Every third-party module `arcsolver finetune --predict` imports (measured by tests/test_kaggle_faults.py, which
# runs that path and compares): the notebook checks each one after the offline install and names the missing ones.
SOLVE_MODULES = ("numpy", "numba", "llvmlite", "orjson", "click", "torch", "accelerate", "safetensors", "tqdm", "yaml",
                 "packaging", "typing_extensions", "sympy", "mpmath", "psutil", "huggingface_hub")

DEFAULT_COMPETITION = "arc-prize-2025"
DEFAULT_KERNEL_SLUG = "arcsolver-trm-submission"
DEFAULT_DATASET_SLUG = "arcsolver-trm-checkpoint"
DEFAULT_LICENSE = "other"  # the wheel is MIT, which Kaggle's list lacks; the description says so

# docs/datasets_metadata.md of Kaggle/kaggle-cli: the only names `licenses[0].name` may take.
LICENSES = frozenset({
    "CC0-1.0", "CC-BY-SA-3.0", "CC-BY-SA-4.0", "CC-BY-NC-SA-4.0", "GPL-2.0", "ODbL-1.0", "DbCL-1.0",
    "copyright-authors", "other", "unknown", "CC-BY-4.0", "CC-BY-NC-4.0", "PDDL", "CC-BY-3.0", "CC-BY-3.0-IGO",
    "US-Government-Works", "CC-BY-NC-SA-3.0-IGO", "CDLA-Permissive-1.0", "CDLA-Sharing-1.0", "CC-BY-ND-4.0",
    "CC-BY-NC-ND-4.0", "ODC-BY-1.0", "LGPL-3.0", "AGPL-3.0", "FDL-1.3", "EU-ODP-Legal-Notice", "apache-2.0",
    "GPL-3.0",
})
# docs/kernels.md (Feb 2026). A misspelt shape silently falls back to a P100 (kaggle.md §1.6), so unknown names are
# rejected rather than passed through.
MACHINE_SHAPES = frozenset({
    "NvidiaTeslaP100", "TpuV38", "NvidiaTeslaT4", "NvidiaTeslaT4Highmem", "Tpu1VmV38", "NvidiaTeslaA100",
    "NvidiaL4", "TpuV5E8", "NvidiaL4X1", "TpuV6E8", "NvidiaH100", "NvidiaRtxPro6000",
})
LANGUAGES = ("python", "r", "rmarkdown")
KERNEL_TYPES = ("script", "notebook")

_OWNER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
# The docs say a dataset slug may have 3 characters, but the 2.2.4 client's `dataset_create_new` rejects fewer
# than 6: follow the client, which is what actually runs.
DATASET_SLUG_LEN = (6, 50)
DATASET_TITLE_LEN = (6, 50)
SUBTITLE_LEN = (20, 80)
KERNEL_TITLE_MIN = 5


# ---------------------------------------------------------------------------------------------------------------
# Names and owners


def slugify(text: str) -> str:
    """Kaggle's slug of a title (python-slugify's rule for ASCII titles): lowercase, runs of anything but letters
    and digits become one hyphen, apostrophes vanish."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    ascii_text = re.sub(r"['\u2019]+", "", ascii_text.lower())
    return re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")


def kaggle_config_dirs(env: Mapping[str, str] = os.environ) -> list[Path]:
    """Where the kaggle client looks for kaggle.json / access_token, in its order (kaggle.md §2.1)."""
    dirs = []
    if env.get("KAGGLE_CONFIG_DIR"):
        dirs.append(Path(env["KAGGLE_CONFIG_DIR"]).expanduser())
    home = Path(env.get("HOME") or Path.home())
    dirs.append(home / ".kaggle")
    dirs.append(Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "kaggle")
    return dirs


def kaggle_username(env: Mapping[str, str] = os.environ) -> str | None:
    """The Kaggle user name from $KAGGLE_USERNAME or a kaggle.json; the key is never read into anything kept."""
    if env.get("KAGGLE_USERNAME", "").strip():
        return env["KAGGLE_USERNAME"].strip()
    for d in kaggle_config_dirs(env):
        f = d / "kaggle.json"
        if f.is_file():
            try:
                name = read_json(f).get("username")
            except (InputError, AttributeError):
                continue
            if isinstance(name, str) and name.strip():
                return name.strip()
    return None


def resolve_owner(owner: str | None, env: Mapping[str, str] = os.environ) -> str:
    owner = owner or kaggle_username(env)
    if not owner:
        raise InputError("no Kaggle owner: pass --owner, or set KAGGLE_USERNAME, or put a kaggle.json (with "
                         "'username') in ~/.kaggle")
    if not _OWNER_RE.match(owner):
        raise InputError(f"owner {owner!r} is not a Kaggle user name (letters, digits, '-', '_')")
    return owner


# ---------------------------------------------------------------------------------------------------------------
# Metadata validation (kaggle.md §2)


def _check_ref(value: Any, field: str, slug_len: tuple[int, int] | None = None) -> list[str]:
    if not isinstance(value, str) or value.count("/") != 1:
        return [f"{field}: expected 'owner/slug', got {value!r}"]
    owner, slug = value.split("/")
    problems = []
    if not _OWNER_RE.match(owner):
        problems.append(f"{field}: owner {owner!r} is not a Kaggle user name")
    if not _SLUG_RE.match(slug):
        problems.append(f"{field}: slug {slug!r} must be lowercase letters, digits and single hyphens "
                        f"(e.g. {slugify(slug) or 'my-dataset'!r})")
    if slug_len and not slug_len[0] <= len(slug) <= slug_len[1]:
        problems.append(f"{field}: slug {slug!r} has {len(slug)} characters, expected {slug_len[0]}-{slug_len[1]}")
    return problems


def _as_bool(value: Any) -> bool | None:
    """The kaggle client's reading of a boolean field (a bool, or "true"/"false" in any case); None if invalid."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def validate_dataset_metadata(meta: Any, folder: str | os.PathLike | None = None) -> list[str]:
    """Every problem with a dataset-metadata.json (empty = fine), one line each. With `folder`, also checks that
    the folder has something to upload besides the metadata."""
    if not isinstance(meta, dict):
        return [f"expected a JSON object, got {type(meta).__name__}"]
    problems: list[str] = []
    title = meta.get("title")
    if not isinstance(title, str):
        problems.append("title: missing (6-50 characters)")
    elif not DATASET_TITLE_LEN[0] <= len(title) <= DATASET_TITLE_LEN[1]:
        problems.append(f"title: {len(title)} characters, expected 6-50")
    if "id" not in meta:
        problems.append("id: missing ('owner/slug')")
    else:
        problems += _check_ref(meta["id"], "id", DATASET_SLUG_LEN)
    lic = meta.get("licenses")
    if not isinstance(lic, list) or len(lic) != 1:
        n = len(lic) if isinstance(lic, list) else "no"
        problems.append(f"licenses: exactly one licence is required, got {n}")
    elif not isinstance(lic[0], dict) or lic[0].get("name") not in LICENSES:
        name = lic[0].get("name") if isinstance(lic[0], dict) else lic[0]
        problems.append(f"licenses: {name!r} is not a Kaggle licence name (e.g. CC0-1.0, CC-BY-4.0, apache-2.0, "
                        f"other)")
    sub = meta.get("subtitle")
    if sub is not None and (not isinstance(sub, str) or not SUBTITLE_LEN[0] <= len(sub) <= SUBTITLE_LEN[1]):
        problems.append("subtitle: must be 20-80 characters when given")
    kw = meta.get("keywords")
    if kw is not None and (not isinstance(kw, list) or not all(isinstance(k, str) for k in kw)):
        problems.append("keywords: expected a list of strings")
    if folder is not None:
        files = [p for p in Path(folder).iterdir() if p.name != DATASET_METADATA] if Path(folder).is_dir() else []
        if not files:
            problems.append(f"{folder}: nothing to upload besides {DATASET_METADATA}")
    return problems


def validate_kernel_metadata(meta: Any, folder: str | os.PathLike | None = None) -> list[str]:
    """Every problem with a kernel-metadata.json for a code-competition notebook (empty = fine), one line each.
    With `folder`, also checks that `code_file` exists there."""
    if not isinstance(meta, dict):
        return [f"expected a JSON object, got {type(meta).__name__}"]
    problems: list[str] = []
    ref = meta.get("id")
    slug = None
    if ref is None:
        problems.append("id: missing ('owner/kernel-slug')")
    else:
        ref_problems = _check_ref(ref, "id")
        problems += ref_problems
        if not ref_problems:
            slug = ref.split("/")[1]
    title = meta.get("title")
    if not isinstance(title, str) or len(title) < KERNEL_TITLE_MIN:
        problems.append("title: missing or shorter than 5 characters")
    elif slug is not None and slugify(title) != slug:
        # The client only warns, but a mismatch makes Kaggle derive another slug and "push" create a new kernel.
        problems.append(f"title: {title!r} slugifies to {slugify(title)!r}, not to the id's slug {slug!r}")
    code_file = meta.get("code_file")
    if not isinstance(code_file, str) or not code_file:
        problems.append("code_file: missing")
    else:
        if meta.get("kernel_type") == "notebook" and not code_file.endswith(".ipynb"):
            problems.append(f"code_file: {code_file!r} is not a .ipynb, but kernel_type is notebook")
        if folder is not None and not (Path(folder) / code_file).is_file():
            problems.append(f"code_file: {Path(folder) / code_file} does not exist")
    if meta.get("language") not in LANGUAGES:
        problems.append(f"language: {meta.get('language')!r}, expected one of {', '.join(LANGUAGES)}")
    if meta.get("kernel_type") not in KERNEL_TYPES:
        problems.append(f"kernel_type: {meta.get('kernel_type')!r}, expected one of {', '.join(KERNEL_TYPES)}")
    for key in ("is_private", "enable_gpu", "enable_tpu", "enable_internet"):
        if key in meta and _as_bool(meta[key]) is None:
            problems.append(f"{key}: {meta[key]!r} is not true/false")
    if "enable_internet" not in meta:
        problems.append("enable_internet: missing; the kaggle client then turns internet ON, which a code "
                        "competition refuses: write \"false\"")
    elif _as_bool(meta["enable_internet"]) is True:
        problems.append("enable_internet: true; code competitions only accept notebooks with internet off")
    comps = meta.get("competition_sources")
    if not isinstance(comps, list) or not comps:
        problems.append("competition_sources: expected a list with the competition slug (e.g. arc-prize-2025)")
    else:
        for c in comps:
            if not isinstance(c, str) or not _SLUG_RE.match(c):
                problems.append(f"competition_sources: {c!r} is not a competition slug")
    for key in ("dataset_sources", "kernel_sources"):
        refs = meta.get(key, [])
        if not isinstance(refs, list):
            problems.append(f"{key}: expected a list of 'owner/slug'")
            continue
        for r in refs:
            problems += _check_ref(r, key)
    models = meta.get("model_sources", [])
    if not isinstance(models, list) or not all(isinstance(m, str) and m.count("/") >= 3 for m in models):
        problems.append("model_sources: expected 'owner/model/framework/variation[/version]' strings")
    shape = meta.get("machine_shape")
    if shape is not None:
        if shape not in MACHINE_SHAPES:
            problems.append(f"machine_shape: {shape!r} is not a known accelerator id ({', '.join(sorted(MACHINE_SHAPES))})"
                            "; an unknown one silently falls back to a P100")
        elif shape.startswith("Nvidia") and _as_bool(meta.get("enable_gpu", False)) is False:
            problems.append(f"machine_shape: {shape} is a GPU but enable_gpu is false")
    pin = meta.get("docker_image_pinning_type")
    if pin is not None and pin not in ("original", "latest"):
        problems.append(f"docker_image_pinning_type: {pin!r}, expected original or latest")
    return problems


def _raise_first(problems: list[str], file: Path) -> None:
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise InputError(problems[0] + more, file=str(file))


def check_dataset_folder(folder: str | os.PathLike) -> dict:
    """Read and validate `folder/dataset-metadata.json`; InputError on the first problem."""
    f = Path(folder) / DATASET_METADATA
    meta = read_json(f)
    _raise_first(validate_dataset_metadata(meta, folder), f)
    return meta


def check_kernel_folder(folder: str | os.PathLike) -> dict:
    """Read and validate `folder/kernel-metadata.json`; InputError on the first problem."""
    f = Path(folder) / KERNEL_METADATA
    meta = read_json(f)
    _raise_first(validate_kernel_metadata(meta, folder), f)
    return meta


# ---------------------------------------------------------------------------------------------------------------
# Wheel, checkpoint, notebook


def _wheel_version(wheel: Path) -> str:
    parts = wheel.name.split("-")
    if len(parts) < 5 or parts[0] != "arcsolver" or not wheel.name.endswith(".whl"):
        raise InputError("not an arcsolver wheel (arcsolver-<version>-<py>-<abi>-<platform>.whl)", file=str(wheel))
    return parts[1]


def _check_wheel(wheel: Path) -> None:
    try:
        with zipfile.ZipFile(wheel) as zf:
            names = set(zf.namelist())
    except (OSError, zipfile.BadZipFile) as e:
        raise InputError(f"unreadable wheel ({e})", file=str(wheel)) from None
    if "arcsolver/kaggle/runner.py" not in names:
        raise InputError("this wheel has no arcsolver/kaggle/runner.py, which the notebook runs", file=str(wheel))


def build_wheel(dest: Path, repo: Path = REPO) -> Path:
    """The arcsolver wheel in `dest`, offline: built from a copy of the sources of the checkout `repo`, or, when
    arcsolver runs from an installed wheel (no checkout around it), the installed files packed back."""
    if not (repo / "pyproject.toml").is_file() or not (repo / "arcsolver").is_dir():
        if repo == REPO:
            return installed_wheel(dest)
        raise InputError("not an arcsolver checkout (no pyproject.toml + arcsolver/); pass a prebuilt wheel",
                         file=str(repo))
    with tempfile.TemporaryDirectory(prefix="arcsolver-wheel-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for name in ("pyproject.toml", "README.md", "LICENSE", "setup.py", "setup.cfg", "MANIFEST.in"):
            if (repo / name).is_file():
                shutil.copy2(repo / name, src / name)
        shutil.copytree(repo / "arcsolver", src / "arcsolver",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
        out = Path(tmp) / "dist"
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w",
               str(out), str(src)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        wheels = sorted(out.glob("arcsolver-*.whl")) if out.is_dir() else []
        if res.returncode != 0 or len(wheels) != 1:
            tail = (res.stdout + res.stderr).strip().splitlines()[-5:]
            raise InputError(f"building the arcsolver wheel failed (exit {res.returncode}): {' | '.join(tail)}",
                             file=str(repo))
        dest.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy2(wheels[0], dest / wheels[0].name))


def installed_wheel(dest: Path) -> Path:
    """The installed arcsolver packed back into a wheel in `dest` (`kaggle package` from a wheel install): the files
    its RECORD lists under site-packages, byte for byte, and a fresh RECORD with their hashes. Left out: what pip adds
    at install time (INSTALLER, REQUESTED, direct_url.json), scripts outside site-packages (pip makes them again from
    entry_points.txt) and bytecode."""
    import base64
    import hashlib
    from importlib.metadata import PackageNotFoundError, distribution
    try:
        dist = distribution("arcsolver")
    except PackageNotFoundError:
        raise InputError("arcsolver is neither a checkout nor an installed distribution; pass a prebuilt wheel",
                         file=str(REPO)) from None
    info = f"{dist.metadata['Name']}-{dist.version}.dist-info"
    added = {f"{info}/{name}" for name in ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json")}
    names = sorted(str(f) for f in dist.files or [])
    names = [n for n in names if not n.startswith("..") and "__pycache__/" not in n and not n.endswith(".pyc")
             and n not in added]
    if f"{info}/WHEEL" not in names or "arcsolver/kaggle/runner.py" not in names:
        raise InputError("the installed arcsolver lists no package files (an editable install without its "
                         "checkout?); pass a prebuilt wheel", file=str(dist.locate_file(info)))
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"arcsolver-{dist.version}-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in names:
            data = Path(dist.locate_file(name)).read_bytes()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            zf.writestr(name, data)
            record.append(f"{name},sha256={digest},{len(data)}")
        zf.writestr(f"{info}/RECORD", "\n".join(record + [f"{info}/RECORD,,"]) + "\n")
    return path


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another filesystem, or links not allowed
        shutil.copy2(src, dst)


def check_checkpoint(ck: Path, competition: str, allow_small_canvas: bool = False) -> dict:
    """The checkpoint's config, after checking what the notebook will need: config.json and the weights' headers
    readable (a truncated upload is one line here, not a traceback on Kaggle), and for an ARC competition a canvas
    that holds the largest grids (30x30): on a smaller one every task with a larger grid can only fall back."""
    for name in REQUIRED_CHECKPOINT_FILES:
        if not (ck / name).is_file():
            raise InputError(f"checkpoint has no {name}", file=str(ck))
    problem = checkpoint_problem(ck)
    if problem:
        raise InputError(problem + "; re-copy the checkpoint")
    config = read_json(ck / "config.json")
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    canvas = data.get("canvas") or 30
    if competition.startswith("arc-prize") and isinstance(canvas, int) and canvas < 30 and not allow_small_canvas:
        raise InputError(f"trained on a {canvas}x{canvas} canvas: the competition's grids go up to 30x30, so every "
                         f"task with a larger grid would get only the fallback (pass --allow-small-canvas to "
                         f"package it anyway)", file=str(ck / "config.json"), field="data.canvas")
    return config


def copy_checkpoint(checkpoint: Path, dest: Path) -> list[str]:
    """Copy what inference needs from a checkpoint folder (or a run folder's latest) into `dest`."""
    ck = resolve_checkpoint(checkpoint)
    for name in REQUIRED_CHECKPOINT_FILES:
        if not (ck / name).is_file():
            raise InputError(f"checkpoint has no {name}", file=str(ck))
    dest.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in CHECKPOINT_FILES:
        if (ck / name).is_file():
            _link_or_copy(ck / name, dest / name)
            copied.append(name)
    return copied


def template_cells(text: str) -> list[tuple[str, str]]:
    """(cell_type, source) pairs from a jupytext percent-format file; text before the first `# %%` is dropped."""
    cells: list[tuple[str, str]] = []
    kind: str | None = None
    lines: list[str] = []

    def flush() -> None:
        if kind is None:
            return
        if kind == "markdown":
            body = [ln[2:] if ln.startswith("# ") else ln.lstrip("#") for ln in lines]
        else:
            body = lines
        src = "\n".join(body).strip("\n")
        if src:
            cells.append((kind, src))

    for line in text.splitlines():
        if line.startswith("# %%"):
            flush()
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
        elif kind is not None:
            lines.append(line)
    flush()
    return cells


def render_notebook(config: dict, template: Path = TEMPLATE) -> Any:
    """The notebook (an nbformat v4 NotebookNode, validated) with `config` baked into the config line."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    if not template.is_file():
        raise InputError("notebook template not found (a broken install? reinstall arcsolver)", file=str(template))
    text = template.read_text(encoding="utf-8")
    if text.count(CONFIG_LINE) != 1:
        raise InputError(f"the template must contain the line {CONFIG_LINE!r} exactly once", file=str(template))
    text = text.replace(CONFIG_LINE, "ARCSOLVER_CONFIG: dict = " + pprint.pformat(config, sort_dicts=False,
                                                                                   width=100))
    cells = []
    for i, (kind, src) in enumerate(template_cells(text)):
        if kind == "code":
            try:
                ast.parse(src)
            except SyntaxError as e:
                raise InputError(f"code cell {i} does not parse: {e}", file=str(template)) from None
            cell = new_code_cell(src)
        else:
            cell = new_markdown_cell(src)
        cell["id"] = f"cell-{i}"  # stable ids: the same package gives the same notebook
        cells.append(cell)
    nb = new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    })
    nbformat.validate(nb)
    return nb


# ---------------------------------------------------------------------------------------------------------------
# The package


def _mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def package(checkpoint: str | os.PathLike, out: str | os.PathLike, *, competition: str = DEFAULT_COMPETITION,
            dataset_slug: str | None = None, kernel_slug: str | None = None, owner: str | None = None,
            title: str | None = None, dataset_title: str | None = None, gpu: bool = True,
            machine_shape: str | None = None, margin_s: float = DEFAULT_MARGIN_S, limit_s: float = RUN_LIMIT_S,
            wheel: str | os.PathLike | None = None, extra_wheels: Sequence[str | os.PathLike] = (),
            license_name: str = DEFAULT_LICENSE, full_commit_run: bool = False,
            finetune_args: Sequence[str] = (), allow_small_canvas: bool = False) -> Path:
    """Write the ready-to-push folder `out` (see the module docstring) and return it.

    `title` is the notebook's title (default: from `kernel_slug`); the kernel slug defaults to the title's slug.
    `margin_s` is kept free before Kaggle's `limit_s` (12 h); the notebook's deadline is `limit_s - margin_s` after
    it starts. `wheel` skips the build (a prebuilt arcsolver wheel); `extra_wheels` are shipped in `wheels/` and
    installed offline before arcsolver. `full_commit_run` makes commit runs solve every task (default: smoke).
    `finetune_args` are appended to the notebook's `arcsolver finetune` command (e.g. `--num-aug 300`; the CLI
    checks them with finetune's parser first). The checkpoint must be readable, and for an ARC competition trained
    on the full 30x30 canvas unless `allow_small_canvas`.
    `out` is replaced atomically, and only if it is empty, absent, or an earlier package.
    """
    out = Path(out)
    owner = resolve_owner(owner)
    if not _SLUG_RE.match(competition):
        raise InputError(f"competition {competition!r} is not a Kaggle competition slug (e.g. arc-prize-2025)")
    if not 0 <= margin_s < limit_s:
        raise InputError(f"margin {margin_s:.0f} s must be between 0 and the {limit_s:.0f} s run limit")
    if kernel_slug is None:
        kernel_slug = slugify(title) if title else DEFAULT_KERNEL_SLUG
    if title is None:
        title = kernel_slug.replace("-", " ")  # slugifies back to kernel_slug
    dataset_slug = dataset_slug or DEFAULT_DATASET_SLUG
    dataset_title = dataset_title or dataset_slug.replace("-", " ")
    dataset_ref, kernel_ref = f"{owner}/{dataset_slug}", f"{owner}/{kernel_slug}"
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / PACKAGE_MARKER).is_file())):
        raise InputError(f"exists and is not an arcsolver package folder ({PACKAGE_MARKER} missing); "
                         f"choose another --out", file=str(out))
    ck = resolve_checkpoint(checkpoint)
    _check_weights_files(ck)
    check_checkpoint(ck, competition, allow_small_canvas)
    extra = [Path(w) for w in extra_wheels]
    for w in extra:
        if not w.is_file() or not w.name.endswith(".whl"):
            raise InputError("not a wheel file", file=str(w))

    # Metadata first, so a bad name fails in a second, before the wheel build and the checkpoint copy.
    code_file = f"{kernel_slug}.ipynb"
    ds_meta = {
        "title": dataset_title,
        "id": dataset_ref,
        "licenses": [{"name": license_name}],
        "description": "",  # filled in below, once the wheel version and the copied files are known
        "keywords": [],
    }
    kn_meta: dict[str, Any] = {
        "id": kernel_ref,
        "title": title,
        "code_file": code_file,
        "language": "python",
        "kernel_type": "notebook",
        "is_private": "true",
        "enable_gpu": "true" if gpu else "false",
        "enable_tpu": "false",
        "enable_internet": "false",
        "dataset_sources": [dataset_ref],
        "competition_sources": [competition],
        "kernel_sources": [],
        "model_sources": [],
    }
    if machine_shape:
        kn_meta["machine_shape"] = machine_shape
    _raise_first(validate_dataset_metadata(ds_meta), out / "dataset" / DATASET_METADATA)
    _raise_first([p for p in validate_kernel_metadata(kn_meta) if not p.startswith("code_file")],
                 out / "kernel" / KERNEL_METADATA)

    with atomic_dir(out) as tmp:
        ds = tmp / "dataset"
        ds.mkdir()
        if wheel is not None:
            w = Path(wheel)
            if not w.is_file():
                raise InputError("wheel not found", file=str(w))
            _wheel_version(w)
            whl = Path(shutil.copy2(w, ds / w.name))
        else:
            whl = build_wheel(ds)
        version = _wheel_version(whl)
        _check_wheel(whl)
        copied = copy_checkpoint(ck, ds / CHECKPOINT_DIR)
        for w in extra:
            (ds / "wheels").mkdir(exist_ok=True)
            shutil.copy2(w, ds / "wheels" / w.name)
        created = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
        write_json(ds / MARKER_NAME, {"format": 1, "arcsolver_version": version, "wheel": whl.name,
                                      "checkpoint": CHECKPOINT_DIR, "checkpoint_files": copied,
                                      "extra_wheels": [w.name for w in extra], "created": created}, indent=True)
        ds_meta["description"] = (f"arcsolver {version} (MIT) wheel and a Tiny Recursive Model checkpoint "
                                  f"({', '.join(copied)}) for the {competition} Kaggle notebook {kernel_ref}.")
        write_json(ds / DATASET_METADATA, ds_meta, indent=True)
        _raise_first(validate_dataset_metadata(ds_meta, ds), out / "dataset" / DATASET_METADATA)

        kn = tmp / "kernel"
        kn.mkdir()
        config = {
            "competition": competition,
            "dataset": dataset_ref,
            "wheel": whl.name,
            "deadline_s": float(limit_s - margin_s),
            "margin_s": float(margin_s),
            "smoke": False if full_commit_run else None,
            "finetune_args": [str(a) for a in finetune_args],
            "required_modules": list(SOLVE_MODULES),
            "arcsolver_version": version,
            "packaged_at": created,
        }
        import nbformat

        nb = render_notebook(config)
        atomic_write_bytes(kn / code_file, nbformat.writes(nb).encode("utf-8"))
        write_json(kn / KERNEL_METADATA, kn_meta, indent=True)
        _raise_first(validate_kernel_metadata(kn_meta, kn), out / "kernel" / KERNEL_METADATA)

        write_json(tmp / PACKAGE_MARKER, {"format": 1, "dataset": dataset_ref, "kernel": kernel_ref,
                                          "competition": competition, "arcsolver_version": version,
                                          "created": created}, indent=True)
    return out


def wheels_in(folder: Path) -> list[Path]:
    """The *.whl files of `--extra-wheels DIR` (InputError when there are none)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("not a folder", file=str(folder), field="--extra-wheels")
    wheels = sorted(folder.glob("*.whl"))
    if not wheels:
        raise InputError("no *.whl files in this folder", file=str(folder), field="--extra-wheels")
    return wheels


def _check_weights_files(ck: Path) -> None:
    """Weights files complete and readable (safetensors header vs file size) before the copy and the wheel build:
    a truncated checkpoint would otherwise only fail on Kaggle, hours later."""
    from arcsolver.model.checks import safetensors_shapes
    for name in ("model.safetensors", "ema.safetensors"):
        if name == "model.safetensors" or (ck / name).is_file():
            safetensors_shapes(ck / name)


def package_cmd(checkpoint: Path, out: Path, competition: str, owner: str | None, dataset_slug: str | None,
                kernel_slug: str | None, gpu: bool, machine_shape: str | None, margin_minutes: float,
                finetune_args: Sequence[str] = (), *, extra_wheels: Sequence[Path] = (),
                allow_small_canvas: bool = False) -> str:
    """CLI face of `package`: build the folder, return a short report with the next steps."""
    out = package(checkpoint, out, competition=competition, owner=owner, dataset_slug=dataset_slug,
                  kernel_slug=kernel_slug, gpu=gpu, machine_shape=machine_shape, margin_s=margin_minutes * 60,
                  finetune_args=finetune_args, extra_wheels=extra_wheels, allow_small_canvas=allow_small_canvas)
    ds_meta = read_json(out / "dataset" / DATASET_METADATA)
    kn_meta = read_json(out / "kernel" / KERNEL_METADATA)
    marker = read_json(out / "dataset" / MARKER_NAME)
    accel = ("GPU" + (f" {kn_meta['machine_shape']}" if "machine_shape" in kn_meta else " (Kaggle's default)")
             if gpu else "CPU")
    hours = (RUN_LIMIT_S - margin_minutes * 60) / 3600
    return "\n".join([
        f"packaged {out}",
        f"  dataset  {ds_meta['id']}: {marker['wheel']} + checkpoint ({', '.join(marker['checkpoint_files'])}), "
        f"{_mb(out / 'dataset'):.1f} MB",
        f"  kernel   {kn_meta['id']}: {out / 'kernel' / kn_meta['code_file']}; {accel}, internet off, "
        f"competition {competition}",
        f"  deadline {hours:.2f} h after the notebook starts (margin {margin_minutes:g} min); commit runs are smoke "
        f"runs, the scoring rerun runs in full",
        f"next: upload it (arcsolver kaggle upload {out}; try --dry-run first), or by hand:",
        f"  kaggle datasets create -p {out / 'dataset'} --dir-mode zip   "
        f"(later: kaggle datasets version -p {out / 'dataset'} -m MSG --dir-mode zip)",
        f"  kaggle kernels push -p {out / 'kernel'}",
    ])

