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
