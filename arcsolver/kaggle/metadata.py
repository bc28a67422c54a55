"""Kaggle's rules for the two metadata files (docs/kaggle-format.md, 'Metadata files'): dataset- and
kernel-metadata.json.

`validate_dataset_metadata` / `validate_kernel_metadata` return every problem, one line each (like
`validate_submission`), so `kaggle package` can check its own output and `kaggle upload` a folder edited by hand;
`check_dataset_folder` / `check_kernel_folder` read a folder's file and raise the first problem as one InputError.
Choices: the rules follow what the kaggle client (2.2.4) and Kaggle actually accept, where the docs differ (a dataset
slug of at least 6 characters); unknown machine shapes are refused, since Kaggle silently falls back to a P100; a
missing `enable_internet` is an error, since the client then turns internet on and code competitions refuse that.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path
from typing import Any

from arcsolver.runtime.errors import InputError
from arcsolver.runtime.jsonio import read_json

DATASET_METADATA = "dataset-metadata.json"
KERNEL_METADATA = "kernel-metadata.json"

# Kaggle/kaggle-cli/docs/datasets_metadata.md: the only names `licenses[0].name` may take.
LICENSES = frozenset({
    "CC0-1.0", "CC-BY-SA-3.0", "CC-BY-SA-4.0", "CC-BY-NC-SA-4.0", "GPL-2.0", "ODbL-1.0", "DbCL-1.0",
    "copyright-authors", "other", "unknown", "CC-BY-4.0", "CC-BY-NC-4.0", "PDDL", "CC-BY-3.0", "CC-BY-3.0-IGO",
    "US-Government-Works", "CC-BY-NC-SA-3.0-IGO", "CDLA-Permissive-1.0", "CDLA-Sharing-1.0", "CC-BY-ND-4.0",
    "CC-BY-NC-ND-4.0", "ODC-BY-1.0", "LGPL-3.0", "AGPL-3.0", "FDL-1.3", "EU-ODP-Legal-Notice", "apache-2.0",
    "GPL-3.0",
})
# Kaggle/kaggle-cli/docs/kernels.md (Feb 2026). A misspelt shape silently falls back to a P100 (docs/kaggle-format.md,
# 'Accelerator selection'), so unknown names are rejected rather than passed through.
MACHINE_SHAPES = frozenset({
    "NvidiaTeslaP100", "TpuV38", "NvidiaTeslaT4", "NvidiaTeslaT4Highmem", "Tpu1VmV38", "NvidiaTeslaA100",
    "NvidiaL4", "TpuV5E8", "NvidiaL4X1", "TpuV6E8", "NvidiaH100", "NvidiaRtxPro6000",
})
LANGUAGES = ("python", "r", "rmarkdown")
KERNEL_TYPES = ("script", "notebook")

OWNER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
# The docs say a dataset slug may have 3 characters, but the 2.2.4 client's `dataset_create_new` rejects fewer
# than 6: follow the client, which is what actually runs.
DATASET_SLUG_LEN = (6, 50)
DATASET_TITLE_LEN = (6, 50)
SUBTITLE_LEN = (20, 80)
KERNEL_TITLE_MIN = 5


def slugify(text: str) -> str:
    """Kaggle's slug of a title (python-slugify's rule for ASCII titles): lowercase, runs of anything but letters
    and digits become one hyphen, apostrophes vanish."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    ascii_text = re.sub(r"['\u2019]+", "", ascii_text.lower())
    return re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")


def _check_ref(value: Any, field: str, slug_len: tuple[int, int] | None = None) -> list[str]:
    if not isinstance(value, str) or value.count("/") != 1:
        return [f"{field}: expected 'owner/slug', got {value!r}"]
    owner, slug = value.split("/")
    problems = []
    if not OWNER_RE.match(owner):
        problems.append(f"{field}: owner {owner!r} is not a Kaggle user name")
    if not SLUG_RE.match(slug):
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
            if not isinstance(c, str) or not SLUG_RE.match(c):
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


def raise_first(problems: list[str], file: Path) -> None:
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise InputError(problems[0] + more, file=str(file))


def check_dataset_folder(folder: str | os.PathLike) -> dict:
    """Read and validate `folder/dataset-metadata.json`; InputError on the first problem."""
    f = Path(folder) / DATASET_METADATA
    meta = read_json(f)
    raise_first(validate_dataset_metadata(meta, folder), f)
    return meta


def check_kernel_folder(folder: str | os.PathLike) -> dict:
    """Read and validate `folder/kernel-metadata.json`; InputError on the first problem."""
    f = Path(folder) / KERNEL_METADATA
    meta = read_json(f)
    raise_first(validate_kernel_metadata(meta, folder), f)
    return meta
