"""How a command's process ends (runtime/process_end.py): its exit code always; in a process of a multi-process run
no teardown (atexit hooks do not run) and yet every line it printed arrives, stdout being a pipe."""
import os
import subprocess
import sys

from conftest import free_port

SCRIPT = """
import atexit, sys
atexit.register(lambda: print("teardown ran", flush=True))
if {distributed}:
    import torch.distributed as dist
    dist.init_process_group("gloo", rank=0, world_size=1, init_method="tcp://127.0.0.1:{port}")
print("printed before, not flushed")
sys.argv = ["arcsolver", *{argv!r}]
from arcsolver.cli import run
run()
"""


def _buffered_env() -> dict:
    """One thread, and stdout buffered as it is for a user's pipe (PYTHONUNBUFFERED, set on some CI boxes, not)."""
    return {**{k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}, "OMP_NUM_THREADS": "1"}


def _run(tmp_path, distributed: bool, argv: list[str]) -> subprocess.CompletedProcess:
    script = SCRIPT.format(distributed=distributed, port=free_port(), argv=argv)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          env=_buffered_env())


def test_a_distributed_command_keeps_its_output_and_exit_code_and_skips_teardown(tmp_path):
    ok = _run(tmp_path, True, ["validate", "--help"])
    assert ok.returncode == 0 and "Usage: arcsolver validate" in ok.stdout, ok.stderr
    assert "teardown ran" not in ok.stdout
    bad = _run(tmp_path, True, ["score", "missing.json", "--solutions", "nowhere.json"])
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error:") and "Traceback" not in bad.stderr
    assert "printed before, not flushed" in bad.stdout  # nothing else wrote to stdout: only end_process flushed it
    assert "teardown ran" not in bad.stdout


def test_a_single_process_command_ends_normally(tmp_path):
    bad = _run(tmp_path, False, ["score", "missing.json", "--solutions", "nowhere.json"])
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error:")
    assert bad.stdout.splitlines() == ["printed before, not flushed", "teardown ran"]


def test_end_process_under_distributed_prints_a_message_code_and_exits_1():
    script = ("import atexit, sys\n"
              "atexit.register(lambda: print('teardown ran', flush=True))\n"
              "import torch.distributed as dist\n"
              f"dist.init_process_group('gloo', rank=0, world_size=1, init_method='tcp://127.0.0.1:{free_port()}')\n"
              "print('buffered line')\n"  # stdout is a pipe: block-buffered, not yet written
              "from arcsolver.runtime.process_end import end_process\n"
              "end_process('stopped: why')\n"
              "print('after the end')\n")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                       env=_buffered_env())
    assert (r.returncode, r.stdout) == (1, "buffered line\n"), r.stderr
    assert r.stderr.strip().endswith("stopped: why")
