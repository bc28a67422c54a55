import pytest

from arcsolver.training.config import PRESETS, TrainConfig, build_config, load_preset
from arcsolver.model.checks import check_arch_field
from arcsolver.runtime.errors import InputError
from arcsolver.runtime.units import parse_duration


def test_paper_presets_match_reference_readme():
    arc = build_config("arc-agi-1")
    assert (arc.global_batch_size, arc.epochs, arc.lr, arc.puzzle_emb_lr, arc.weight_decay) == (768, 100000, 1e-4, 1e-2, 0.1)
    assert (arc.arch["H_cycles"], arc.arch["L_cycles"], arc.arch["L_layers"], arc.arch["hidden_size"]) == (3, 4, 2, 512)
    assert arc.ema and arc.ema_rate == 0.999 and arc.lr_warmup_steps == 2000 and arc.lr_min_ratio == 1.0
    sud = build_config("sudoku-extreme-mlp")
    assert sud.arch["mlp_t"] is True and sud.arch["pos_encodings"] == "none" and sud.arch["L_cycles"] == 6
    assert (sud.epochs, sud.eval_interval_epochs, sud.lr, sud.puzzle_emb_lr, sud.weight_decay) == (50000, 5000, 1e-4, 1e-4, 1.0)
    att = build_config("sudoku-extreme-att")
    assert att.arch["mlp_t"] is False
    maze = build_config("maze-hard")
    assert maze.arch["L_cycles"] == 4 and maze.weight_decay == 1.0 and maze.epochs == 50000
    for p in PRESETS.glob("*.toml"):
        load_preset(p.stem)  # every shipped preset parses


def test_overrides_and_errors():
    c = build_config("arc-agi-1", ["lr=3e-4", "arch.hidden_size=128", "max_steps=7", "ema=false"], data="d")
    assert (c.lr, c.arch["hidden_size"], c.max_steps, c.ema, c.data) == (3e-4, 128, 7, False, "d")
    assert build_config(None, ["lr=1"]).lr == 1.0  # int accepted for a float field
    with pytest.raises(InputError, match="unknown field 'nope'"):
        build_config("arc-agi-1", ["nope=1"])
    with pytest.raises(InputError, match="max_steps: expected an integer"):
        build_config("arc-agi-1", ["max_steps=abc"])
    with pytest.raises(InputError, match="expected key=value"):
        build_config("arc-agi-1", ["lr"])
    with pytest.raises(InputError, match="unknown preset"):
        build_config("no-such-preset")


def test_durations():
    assert parse_duration("90") == 90
    assert parse_duration("3m") == 180
    assert parse_duration("2h") == 7200
    assert parse_duration("1h30m") == 5400
    assert parse_duration("45s") == 45
    with pytest.raises(InputError):
        parse_duration("soon")


def test_every_preset_passes_the_validation_layer():
    from arcsolver.training.config import PRESETS
    for p in sorted(PRESETS.glob("*.toml")):
        build_config(p.stem)  # raises on any bad field or relation


def test_values_are_checked_where_they_come_from(tmp_path):
    p = tmp_path / "x.toml"
    p.write_text("[arch]\nnum_heads = 3\nhidden_size = 64\n")
    with pytest.raises(InputError, match="not divisible by arch.num_heads 3"):
        build_config(str(p))
    assert build_config(str(p), ["arch.num_heads=4"]).arch["num_heads"] == 4  # --set repairs it
    assert build_config(None, ["arch.mlp_t=true", "arch.hidden_size=30", "arch.num_heads=4"]).arch["mlp_t"]
    p.write_text("[train]\nglobal_batch_size = true\n")
    with pytest.raises(InputError, match=r"x.toml: global_batch_size: expected an integer, got True"):
        build_config(str(p))


def test_every_field_is_a_declared_setting():
    """A field of TrainConfig or TRMConfig is declared with `setting` (type, default, bounds, help), else no preset,
    --set or checkpoint could set it; the declared defaults pass their own checks."""
    import dataclasses
    from arcsolver.model.trm import TRMConfig
    from arcsolver.runtime.settings import declared
    from arcsolver.training.config import check_train_field
    assert {f.name for f in dataclasses.fields(TrainConfig)} - {"arch"} == set(declared(TrainConfig))
    assert {f.name for f in dataclasses.fields(TRMConfig)} == set(declared(TRMConfig))
    for f in dataclasses.fields(TrainConfig):
        if f.name != "arch":
            check_train_field(f.name, getattr(TrainConfig(), f.name))
    for f in dataclasses.fields(TRMConfig):  # the defaults themselves pass
        check_arch_field(f.name, getattr(TRMConfig(), f.name))
