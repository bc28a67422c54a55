"""Upload a folder written by `kaggle.package` to Kaggle and, on request, submit it to the competition.

Sequence (method names and keyword arguments of the kaggle 2.2.4 `KaggleApi`):

    dataset_status(dataset)                      does the dataset exist? (HTTP 403/404: no)
    dataset_create_version(folder, version_notes, quiet, dir_mode="zip")    if it exists
    dataset_create_new(folder, public=False, quiet, dir_mode="zip")        otherwise
    dataset_status(dataset) ... until "ready"    bounded; the notebook must not start on a half-processed dataset
    kernels_push(folder)                         -> version number
    with submit:
    kernels_status(kernel) ... until "complete"  Kaggle only accepts a version whose commit run finished
    competition_submit_code(file_name="submission.json", message, competition, kernel, kernel_version)

Notable choices:
* `dir_mode="zip"`: the client's default "skip" silently drops sub-folders, i.e. the checkpoint.
* Both metadata files are validated first (kaggle.metadata's validators); a kernel with internet on, or without an
  explicit `enable_internet` (which the client reads as ON), is refused before anything is sent.
* The kaggle module is imported only when an upload really happens, and only after credentials were found in the
  environment or the config folders: older clients call `exit(1)` at import without them, and a missing credential
  deserves one clear line, not a dead process. Credentials are only ever looked up, never written anywhere.
* `dry_run` lists the calls (both branches of the exists check) and needs neither credentials nor the module;
  `api` takes any object with the same methods, so tests pass a recorder.
* API failures become `InputError` lines naming the call, so the CLI prints one line instead of a traceback.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from arcsolver.kaggle.settings import UPLOAD
from arcsolver.runtime.errors import InputError
from arcsolver.kaggle.credentials import kaggle_config_dirs
from arcsolver.kaggle.metadata import check_dataset_folder, check_kernel_folder

SUBMISSION_FILE = "submission.json"
DATASET_FAILED = ("failed", "deleted")
KERNEL_ACTIVE = ("queued", "running", "new_script")
KERNEL_FAILED = ("error", "cancel_requested", "cancel_acknowledged")
# Right after a push, kernels_status may still describe the previous version's finished run; "complete" is only
# believed once the new run was seen active, or after this many polls.
KERNEL_SETTLE_POLLS = 3


@dataclass
class Call:
    """One API call: made (with its `result`) or, in a dry run, only planned."""

    method: str
    kwargs: dict[str, Any]
    note: str = ""
    result: Any = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"api.{self.method}({args})" + (f"   # {self.note}" if self.note else "")


# ---------------------------------------------------------------------------------------------------------------
# Credentials and the real client


def credential_source(env: Mapping[str, str] = os.environ) -> str | None:
    """Where the kaggle client would find credentials (docs/kaggle-format.md, 'Credentials'), described; None when
    nowhere.
    Only existence is checked: the secrets themselves are not read."""
    if env.get("KAGGLE_API_TOKEN", "").strip():
        return "$KAGGLE_API_TOKEN"
    if env.get("KAGGLE_USERNAME", "").strip() and env.get("KAGGLE_KEY", "").strip():
        return "$KAGGLE_USERNAME + $KAGGLE_KEY"
    if env.get("KAGGLE_API_V1_TOKEN_PATH") and Path(env["KAGGLE_API_V1_TOKEN_PATH"]).is_file():
        return "$KAGGLE_API_V1_TOKEN_PATH"
    for d in kaggle_config_dirs(env):
        for name in ("access_token", "access_token.txt", "kaggle.json", "credentials.json"):
            if (d / name).is_file():
                return str(d / name)
    return None


def kaggle_api(env: Mapping[str, str] = os.environ) -> Any:
    """The authenticated `kaggle.api`, or InputError; the module is not imported without credentials."""
    src = credential_source(env)
    if src is None:
        raise InputError("no Kaggle credentials: set KAGGLE_API_TOKEN (or KAGGLE_USERNAME and KAGGLE_KEY), or put "
                         "an access_token or kaggle.json from kaggle.com/settings/api into ~/.kaggle")
    try:
        import kaggle
    except SystemExit:
        raise InputError(f"no Kaggle credentials: the kaggle client refused those in {src}") from None
    except ImportError as e:
        raise InputError(f"the kaggle package is not usable ({e}); install it: pip install 'arcsolver[kaggle]'") \
            from None
    api = getattr(kaggle, "api", None)
    if api is None or getattr(api, "_authenticated", True) is False:
        raise InputError(f"no Kaggle credentials: authentication with {src} failed (an access token is checked "
                         f"online, so this also needs internet)")
    return api


# ---------------------------------------------------------------------------------------------------------------
# The upload


def _status_name(value: Any) -> str:
    # dataset_status returns a lowercase string; kernels_status an object whose .status is an enum.
    value = getattr(value, "status", value)
    return str(getattr(value, "name", value)).lower()


def _field(obj: Any, *names: str) -> Any:
    # kagglesdk responses use snake_case properties; older clients returned camelCase dicts or objects.
    for n in names:
        v = obj.get(n) if isinstance(obj, dict) else getattr(obj, n, None)
        if v:
            return v
    return None


def upload(folder: str | os.PathLike, *, submit: bool = UPLOAD.submit, dry_run: bool = UPLOAD.dry_run,
           message: str = UPLOAD.message, api: Any = None, dataset_wait_s: float = 1800.0,
           kernel_wait_s: float = 3 * 3600.0, poll_s: float = 30.0,
           sleep: Callable[[float], None] = time.sleep, echo: Callable[[str], None] = print) -> list[Call]:
    """Upload `folder` (OUT of kaggle.package): dataset, wait, kernel, and with `submit` the competition submission.

    Returns the calls made (or, with `dry_run`, planned). Waits are bounded by `dataset_wait_s` / `kernel_wait_s`,
    polling every `poll_s`. Raises InputError on invalid metadata, missing credentials or an API failure.
    """
    folder = Path(folder)
    ds_dir, kn_dir = folder / "dataset", folder / "kernel"
    if not folder.is_dir():
        raise InputError("no such folder (give the --out folder of `arcsolver kaggle package`)", file=str(folder))
    if not ds_dir.is_dir() or not kn_dir.is_dir():
        raise InputError("not a folder written by `arcsolver kaggle package` (expected dataset/ and kernel/ in it)",
                         file=str(folder))
    ds_meta = check_dataset_folder(ds_dir)
    kn_meta = check_kernel_folder(kn_dir)  # refuses internet on or missing
    dataset_ref, kernel_ref = ds_meta["id"], kn_meta["id"]
    competition = kn_meta["competition_sources"][0]
    if dataset_ref not in kn_meta.get("dataset_sources", []):
        raise InputError(f"the kernel does not attach the dataset {dataset_ref} (dataset_sources: "
                         f"{kn_meta.get('dataset_sources')})", file=str(kn_dir / "kernel-metadata.json"))
    create_version = Call("dataset_create_version", {"folder": str(ds_dir), "version_notes": message,
                                                     "quiet": False, "dir_mode": "zip"})
    create_new = Call("dataset_create_new", {"folder": str(ds_dir), "public": False, "quiet": False,
                                             "dir_mode": "zip"})
    submit_kwargs: dict[str, Any] = {"file_name": SUBMISSION_FILE, "message": message, "competition": competition,
                                     "kernel": kernel_ref}

    if dry_run:
        plan = [Call("dataset_status", {"dataset": dataset_ref}, "does the dataset exist?"),
                Call(create_version.method, create_version.kwargs, f"if {dataset_ref} exists"),
                Call(create_new.method, create_new.kwargs, "otherwise"),
                Call("dataset_status", {"dataset": dataset_ref},
                     f"every {poll_s:g} s until 'ready', at most {dataset_wait_s:g} s"),
                Call("kernels_push", {"folder": str(kn_dir)})]
        if submit:
            plan += [Call("kernels_status", {"kernel": kernel_ref},
                          f"every {poll_s:g} s until 'complete', at most {kernel_wait_s:g} s"),
                     Call("competition_submit_code", {**submit_kwargs, "kernel_version": "<from kernels_push>"})]
        for c in plan:
            echo(f"[dry-run] {c}")
        echo(f"[dry-run] {len(plan)} calls listed, none made")
        return plan

    api = api if api is not None else kaggle_api()
    calls: list[Call] = []

    def call(method: str, kwargs: dict[str, Any], *, quiet: bool = False, missing_ok: bool = False) -> Any:
        """Make one call and record it; with `missing_ok`, HTTP 403/404 returns None (how the client itself
        tells a missing dataset apart)."""
        c = Call(method, dict(kwargs))
        calls.append(c)
        if not quiet:
            echo(f"-> {c}")
        try:
            c.result = getattr(api, method)(**kwargs)
        except Exception as e:  # noqa: BLE001 - one line for the CLI, the call named
            if missing_ok and getattr(getattr(e, "response", None), "status_code", None) in (403, 404):
                return None
            raise InputError(f"kaggle API {method} failed: {type(e).__name__}: {e}") from None
        return c.result

    # Dataset: new version or creation.
    exists = call("dataset_status", {"dataset": dataset_ref}, missing_ok=True) is not None
    resp = call(create_version.method, create_version.kwargs) if exists else call(create_new.method,
                                                                                  create_new.kwargs)
    err = _field(resp, "error")
    if err:
        raise InputError(f"dataset {'version' if exists else 'creation'} failed: {err}")

    waited = 0.0
    while True:
        status = _status_name(call("dataset_status", {"dataset": dataset_ref}, quiet=True))
        echo(f"   dataset {dataset_ref}: {status}")
        if status == "ready":
            break
        if status in DATASET_FAILED:
            raise InputError(f"Kaggle reports dataset {dataset_ref} as {status}")
        if waited >= dataset_wait_s:
            raise InputError(f"dataset {dataset_ref} still '{status}' after {waited:.0f} s; push the kernel when it "
                             f"is ready: kaggle kernels push -p {kn_dir}")
        sleep(poll_s)
        waited += poll_s

    # Kernel.
    resp = call("kernels_push", {"folder": str(kn_dir)})
    err = _field(resp, "error")
    if err:
        raise InputError(f"kernel push failed: {err}")
    bad = [*(_field(resp, "invalid_dataset_sources", "invalidDatasetSources") or []),
           *(_field(resp, "invalid_competition_sources", "invalidCompetitionSources") or [])]
    if bad:
        raise InputError(f"kernel pushed, but Kaggle rejected its sources {bad}: that version would only write the "
                         f"fallback; fix them and push again")
    version = _field(resp, "version_number", "versionNumber")
    echo(f"   kernel {kernel_ref} version {version} pushed: {_field(resp, 'url') or ''}")
    if not submit:
        return calls

    if not version:
        raise InputError(f"kernels_push reported no version number; submit by hand: kaggle competitions submit "
                         f"{competition} -k {kernel_ref} -v VERSION -f {SUBMISSION_FILE} -m '{message}'")
    waited, polls, seen_active = 0.0, 0, False
    while True:
        resp = call("kernels_status", {"kernel": kernel_ref}, quiet=True)
        status = _status_name(resp)
        polls += 1
        echo(f"   kernel {kernel_ref}: {status}")
        if status in KERNEL_ACTIVE:
            seen_active = True
        elif status == "complete" and (seen_active or polls >= KERNEL_SETTLE_POLLS):
            break
        elif status in KERNEL_FAILED:
            msg = _field(resp, "failure_message", "failureMessage") or ""
            raise InputError(f"kernel {kernel_ref} version {version} ended as {status} {msg}; not submitted")
        if waited >= kernel_wait_s:
            raise InputError(f"kernel {kernel_ref} still '{status}' after {waited:.0f} s; submit when it is "
                             f"complete: kaggle competitions submit {competition} -k {kernel_ref} -v {version} "
                             f"-f {SUBMISSION_FILE} -m '{message}'")
        sleep(poll_s)
        waited += poll_s
    resp = call("competition_submit_code", {**submit_kwargs, "kernel_version": int(version)})
    note = _field(resp, "message")
    echo(f"   submitted {kernel_ref} version {version} to {competition}{f': {note}' if note else ''}; the score "
         f"appears after the hidden-data rerun (kaggle competitions submissions {competition})")
    return calls


def upload_cmd(folder: Path, submit: bool, dry_run: bool, message: str) -> str:
    """CLI face of `upload`: progress is printed as it happens; returns the closing line."""
    calls = upload(folder, submit=submit, dry_run=dry_run, message=message)
    if dry_run:
        return f"dry run: nothing sent ({len(calls)} calls planned)"
    push = next((c for c in calls if c.method == "kernels_push"), None)
    version = _field(push.result, "version_number", "versionNumber") if push else None
    done = "submitted" if any(c.method == "competition_submit_code" for c in calls) else "not submitted"
    return f"uploaded {folder}: dataset ready, kernel version {version} pushed, {done} ({len(calls)} API calls)"
