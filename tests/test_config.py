from pathlib import Path

import pytest

from securedd.config import RunConfig, apply_overrides, config_to_toml, load_config
from securedd.errors import ConfigError


def test_overrides_set_fields_and_method_params():
    cfg = apply_overrides(RunConfig(), ["method.ipc=5", "seed=7", "eval.models=convnet,lenet",
                                        "method.embed_steps=3", "eval.dsa=false", "data.name=mnist"])
    assert cfg.method.ipc == 5 and cfg.seed == 7 and cfg.eval.models == ("convnet", "lenet")
    assert cfg.method.params == {"embed_steps": 3} and cfg.eval.dsa is False and cfg.data.name == "mnist"


def test_toml_round_trip(tmp_path: Path):
    cfg = apply_overrides(RunConfig(), ["method.name=kcenter", "method.embed_steps=10", "eval.runs=2"])
    path = tmp_path / "c.toml"
    path.write_text(config_to_toml(cfg))
    assert load_config(path) == cfg


def test_method_table_keys_become_params(tmp_path: Path):
    path = tmp_path / "c.toml"
    path.write_text('seed = 2\n[method]\nname = "herding"\nipc = 1\nembed_steps = 0\n')
    cfg = load_config(path)
    assert cfg.method.name == "herding" and cfg.method.params == {"embed_steps": 0} and cfg.seed == 2


@pytest.mark.parametrize(
    "override, words",
    [
        ("method.ipc=ten", "method.ipc must be a whole number"),
        ("sed=1", "Did you mean 'seed'"),
        ("eval.rnus=3", "Did you mean 'runs'"),
        ("noequals", "key=value"),
        ("eval.dsa=maybe", "true or false"),
        ("a.b.c=1", "section.key"),
    ],
)
def test_bad_overrides_explain_themselves(override: str, words: str):
    with pytest.raises(ConfigError, match=words):
        apply_overrides(RunConfig(), [override])


def test_missing_and_invalid_files(tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("seed = = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_every_shipped_config_loads_and_names_registered_things():
    from securedd.data import list_datasets
    from securedd.distill import list_methods
    from securedd.models import list_models

    configs = sorted((Path(__file__).parents[1] / "configs").glob("*.toml"))
    assert configs
    for path in configs:
        cfg = load_config(path)
        assert cfg.data.name in list_datasets() and cfg.method.name in list_methods() and cfg.model in list_models()


@pytest.mark.parametrize(
    "override, words",
    [
        ("method.batch_real=-4", "method.batch_real must be >= 1; got -4"),
        ("method.batch_real=0", "method.batch_real must be >= 1; got 0"),  # was reported as "diverged"
        ("method.embed_steps=-1", "method.embed_steps must be >= 0; got -1"),
        ("method.checkpoint_every=-5", "method.checkpoint_every must be >= 0; got -5"),
        ("eval.runs=-1", "eval.runs must be >= 1; got -1"),
        ("eval.runs=0", "eval.runs must be >= 1; got 0"),
        ("eval.lr=-0.01", "eval.lr must be >= 0; got -0.01"),
        ("method.lr_img=-1.0", "method.lr_img must be >= 0; got -1.0"),
        ("method.lr_img=nan", "method.lr_img must be >= 0; got nan"),
        ("method.ipc=0", "method.ipc must be >= 1; got 0"),
        ("eval.cutmix=1.5", "eval.cutmix must be >= 0 and <= 1; got 1.5"),
        ('data.name=["a", "b"]', "data.name must be text; got \\['a', 'b'\\]"),
        ('model=["convnet"]', "model must be text"),
    ],
)
def test_out_of_range_values_are_refused_when_the_config_is_built(override: str, words: str):
    with pytest.raises(ConfigError, match=words):
        apply_overrides(RunConfig(), [override])


def test_out_of_range_values_in_a_toml_file_name_the_setting(tmp_path: Path):
    path = tmp_path / "c.toml"
    path.write_text('[method]\nname = "dm"\nbatch_real = 0\n')
    with pytest.raises(ConfigError, match="method.batch_real must be >= 1; got 0"):
        load_config(path)
    path.write_text('[method]\nname = "kcenter"\n[method.params]\nembed_steps = -3\n')
    with pytest.raises(ConfigError, match="method.embed_steps must be >= 0"):
        load_config(path)


def test_method_settings_are_range_checked_by_parse_params_too():
    from securedd.distill.base import METHODS

    dm = METHODS.get("dm")
    with pytest.raises(ConfigError, match="method.batch_real must be >= 1; got 0"):
        dm.parse_params({"batch_real": "0"})  # a string that coerces to an out-of-range number
    assert dm.parse_params({"batch_real": 1}).batch_real == 1


def test_field_metadata_bound_wins_over_the_name_table():
    from dataclasses import dataclass, field

    from securedd.config import Bound, parse_params

    @dataclass(frozen=True)
    class P:
        batch_real: int = field(default=8, metadata={"bound": Bound(8)})
        lr: float = field(default=0.5, metadata={"bound": Bound(0, 1, open_low=True)})
        steps: int = field(default=0, metadata={"bound": None})  # opts out of the name's bound

    with pytest.raises(ConfigError, match="x.batch_real must be >= 8; got 4"):
        parse_params(P, {"batch_real": 4}, owner="method 'x'", prefix="x.")
    with pytest.raises(ConfigError, match="x.lr must be > 0 and <= 1; got 0.0"):
        parse_params(P, {"lr": 0.0}, owner="method 'x'", prefix="x.")
    assert parse_params(P, {"steps": -1}, owner="method 'x'", prefix="x.").steps == -1


@pytest.mark.parametrize(
    "text",
    ["x = " + "[" * 3000 + "]" * 3000, "x = " + "{a = " * 3000 + "1" + "}" * 3000,
     "x = " + "[" * 40 + "]" * 40, "\n".join("[" + ".".join(["a"] * i) + "]" for i in range(1, 30))],
    ids=["arrays", "inline-tables", "arrays-40", "tables-30"],
)
def test_deeply_nested_toml_is_a_config_error_not_a_recursion_error(tmp_path: Path, text: str):
    path = tmp_path / "deep.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="deep"):
        load_config(path)



@pytest.mark.parametrize("depth", [40, 3000])
def test_deeply_nested_override_is_a_config_error(depth: int):
    with pytest.raises(ConfigError, match="deep"):
        apply_overrides(RunConfig(), ["method.x=" + "[" * depth + "]" * depth])


def test_config_file_that_is_not_text_is_a_config_error(tmp_path: Path):
    path = tmp_path / "binary.toml"
    path.write_bytes(b"\xff\xfe\x00seed = 1")
    with pytest.raises(ConfigError, match="UTF-8"):
        load_config(path)
