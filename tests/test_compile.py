"""torch.compile: "auto" per device, compiled and eager logits agree (inductor, forced on, on this CPU), and a
compile failure falls back to eager with one warning."""
import shutil

import pytest
import torch

from arcsolver.runtime.compilation import compile_enabled, compile_with_fallback
from arcsolver.training.config import build_config
from arcsolver.runtime.errors import InputError
from arcsolver.model.trm import TRM, TRMConfig

from conftest import is_compiled

# Inductor fuses and reorders fp32 reductions (RMSNorm means, matmul epilogues), so compiled logits differ from
# eager in the last bits: measured max |diff| ~1e-6 on logits of magnitude ~1 for this model; the bound leaves 50x.
COMPILED_ATOL = 5e-5


def tiny_model(seed: int = 0) -> tuple[TRM, dict, object]:
    cfg = TRMConfig(batch_size=4, seq_len=8, vocab_size=6, hidden_size=16, num_heads=2, expansion=2.0, H_cycles=2,
                    L_cycles=1, L_layers=1, puzzle_emb_ndim=16, puzzle_emb_len=1, num_puzzle_identifiers=3,
                    forward_dtype="float32", halt_max_steps=2)
    torch.manual_seed(seed)
    m = TRM(cfg)
    with torch.no_grad():
        m.inner.puzzle_emb.weights.normal_()
    g = torch.Generator().manual_seed(1)
    batch = {"inputs": torch.randint(0, 6, (4, 8), generator=g, dtype=torch.int32),
             "labels": torch.randint(1, 6, (4, 8), generator=g).long(),
             "puzzle_identifiers": torch.tensor([0, 1, 2, 1], dtype=torch.int32)}
    carry = m.inner.reset_carry(torch.ones(4, dtype=torch.bool), m.inner.empty_carry(4, torch.device("cpu")))
    return m, batch, carry


@torch.no_grad()
def logits(m: TRM, batch, carry) -> torch.Tensor:
    for _ in range(2):  # two supervision steps: the carry goes through the compiled graph too
        carry, out, _ = m.inner(carry, batch)
    return out


def test_compile_setting_is_per_device():
    assert compile_enabled("auto", "cuda") and not compile_enabled("auto", "cpu")
    assert compile_enabled(True, "cpu") and not compile_enabled(False, "cuda")
    with pytest.raises(InputError, match="compile"):
        compile_enabled("sometimes", "cpu")
    assert build_config(None).compile == "auto"
    assert build_config(None, ["compile=true"]).compile is True
    assert build_config(None, ["compile=false"]).compile is False
    assert build_config(None, ["compile=auto"]).compile == "auto"
    with pytest.raises(InputError):
        build_config(None, ["compile=3"])


def test_a_compile_failure_falls_back_to_eager_with_one_warning():
    def broken_backend(gm, example_inputs):
        raise RuntimeError("injected compiler failure")

    m, batch, carry = tiny_model()
    eager = logits(m, batch, carry)
    warnings: list[str] = []
    compile_with_fallback(m.inner, backend=broken_backend, warn=warnings.append)
    assert is_compiled(m.inner)
    out = logits(m, batch, carry)
    assert torch.equal(out, eager)
    assert len(warnings) == 1 and "injected compiler failure" in warnings[0] and "without compiling" in warnings[0]
    assert not is_compiled(m.inner)
    logits(m, batch, carry)
    assert len(warnings) == 1
    assert set(m.state_dict()) == set(tiny_model()[0].state_dict())  # in place: checkpoint names unchanged


def _inductor_can_compile() -> str | None:
    if shutil.which("g++") is None and shutil.which("c++") is None:
        return "no C++ compiler on this machine: inductor cannot build CPU kernels"
    return None


@pytest.mark.skipif(_inductor_can_compile() is not None, reason=str(_inductor_can_compile()))
def test_compiled_and_eager_logits_agree():
    m, batch, carry = tiny_model()
    eager = logits(m, batch, carry)
    warnings: list[str] = []
    compile_with_fallback(m.inner, warn=warnings.append)
    compiled = logits(m, batch, carry)
    assert warnings == [] and is_compiled(m.inner), warnings  # really compiled, not the fallback
    assert (compiled - eager).abs().max() <= COMPILED_ATOL
    assert torch.equal(compiled.argmax(-1), eager.argmax(-1))
