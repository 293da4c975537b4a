"""Method presets: the shipped files, the loader's rules and errors, and the command line's auto-pick."""

import tomllib
from pathlib import Path

import pytest

from securedd.cli.common import resolve_config
from securedd.cli.main import build_parser, main
from securedd.config import RunConfig
from securedd.data import DATASETS
from securedd.distill import METHODS
from securedd.errors import ConfigError, UnknownNameError
from securedd.models import MODELS
from securedd.presets import find_preset, list_presets, load_preset_file, preset_methods

REPO = Path(__file__).parents[1]
PUBLISHED = ("mnist", "fashionmnist", "svhn", "cifar10", "cifar100")


def _resolve(*argv: str):
    return resolve_config(build_parser().parse_args(["distill", *argv]))


def test_shipped_files_cover_the_published_settings():
    assert {"dc", "dsa", "dm"} <= set(preset_methods())
    for method in ("dc", "dsa", "dm"):
        assert {(p.dataset, p.ipc) for p in list_presets(method)} == {(d, n) for d in PUBLISHED for n in (1, 10, 50)}
    assert all(p.dataset in DATASETS for p in list_presets())
    assert find_preset("dm", "cifar10", 10).values["method"]["iterations"] == 20_000
    assert find_preset("dsa", "mnist", 10).values["method"]["dsa_strategy"] == "color_crop_cutout_scale_rotate"
    assert find_preset("dsa", "cifar10", 50).values["method"]["dsa_strategy"] == "color_crop_cutout_flip_scale_rotate"


@pytest.mark.parametrize("preset", list_presets(), ids=lambda p: p.name)
def test_every_preset_is_accepted_by_its_method(preset):
    if preset.method not in METHODS:
        pytest.skip(f"method '{preset.method}' is not registered on this branch")
    cfg = preset.config()
    assert (cfg.method.name, cfg.data.name, cfg.method.ipc) == (preset.method, preset.dataset, preset.ipc)
    assert cfg.model in MODELS and all(m in MODELS for m in cfg.eval.models)
    METHODS.get(preset.method).parse_params(cfg.method.params)


def test_preset_files_ship_in_the_package_and_not_in_configs():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "*.toml" in pyproject["tool"]["setuptools"]["package-data"]["securedd.presets"]
    stray = sorted(p.name for p in (REPO / "configs" / "presets").glob("*.toml"))
    assert not stray, f"preset files belong in src/securedd/presets/ (git mv configs/presets/{stray[0]} src/securedd/presets/)"


def test_distill_picks_the_exact_preset_and_names_it(capsys, tmp_path: Path):
    cfg, preset = _resolve("--dataset", "mnist", "--method", "dsa", "--ipc", "10")
    assert preset is not None and preset.name == "dsa/mnist/ipc10" and not preset.nearest
    assert cfg.method.iterations == 1000 and cfg.eval.dsa is True and cfg.model == "convnet"
    assert dict(cfg.method.params) == {k: v for k, v in preset.values["method"].items() if k != "iterations"}
    assert cfg.method.params["init"] == "real" and cfg.method.params["lr_img"] == 0.1
    code = main(["distill", "--dataset", "mnist", "--method", "dsa", "--ipc", "10", "--data-root", str(tmp_path / "none"),
                 "--out", str(tmp_path / "x.safetensors")])
    out, err = capsys.readouterr()
    assert code == 2 and "does not exist" in err  # no MNIST here: stops after printing the config
    assert "# preset: dsa/mnist/ipc10 from securedd/presets/dsa.toml" in out and 'init = "real"' in out


def test_flags_and_overrides_win_over_the_preset():
    cfg, preset = _resolve("--dataset", "cifar10", "--method", "dc", "--ipc", "10", "--model", "convnet_tiny",
                           "method.iterations=5", "method.lr_img=0.3", "eval.dsa=true", "method.outer_loop=2")
    assert preset.name == "dc/cifar10/ipc10"
    assert cfg.model == "convnet_tiny" and cfg.method.iterations == 5 and cfg.eval.dsa is True
    assert cfg.method.params["lr_img"] == 0.3 and cfg.method.params["outer_loop"] == 2
    assert cfg.method.params["init"] == "noise" and cfg.method.params["batch_real"] == 256  # the rest from the preset
    # the IPC and method may come from overrides too
    assert _resolve("--dataset", "svhn", "method.name=dm", "method.ipc=50")[1].name == "dm/svhn/ipc50"


def test_no_preset_and_config_files_turn_the_auto_pick_off(tmp_path: Path):
    cfg, preset = _resolve("--dataset", "mnist", "--method", "dsa", "--ipc", "10", "--no-preset")
    assert preset is None and cfg.method.iterations is None and dict(cfg.method.params) == {}
    path = tmp_path / "c.toml"
    path.write_text('[data]\nname = "mnist"\n[method]\nname = "dsa"\nipc = 10\n')
    cfg, preset = _resolve("--config", str(path))
    assert preset is None and dict(cfg.method.params) == {}
    assert _resolve("--dataset", "digits", "--method", "dsa")[1] is None  # no digits entry: nothing picked
    assert _resolve("--dataset", "mnist", "--method", "herding")[1] is None  # no herding presets


@pytest.mark.parametrize("ipc, entry", [(20, 10), (5, 1), (6, 10), (30, 10), (40, 50), (200, 50), (10, 10)])
def test_an_ipc_without_an_entry_gets_the_nearest_one(ipc, entry):
    preset = find_preset("dm", "cifar100", ipc)
    assert preset.ipc == entry and preset.nearest == (ipc != entry)
    assert preset.config().method.ipc == ipc  # the run keeps the IPC asked for
    if preset.nearest:
        assert f"no ipc{ipc} entry; using the nearest IPC, {entry}" in preset.describe()
    cfg, picked = _resolve("--dataset", "cifar100", "--method", "dm", "--ipc", str(ipc))
    assert picked == preset and cfg.method.ipc == ipc


def test_loader_accepts_any_method_settings(tmp_path: Path):
    (tmp_path / "newmethod.toml").write_text(
        '# made up\n[defaults]\nsyn_steps = 20\n[defaults.eval]\nruns = 5\n'
        '[cifar10.ipc1]\nexpert_epochs = 2\nmodel = "convnet_bn"\niterations = 300\n[cifar10.ipc1.eval]\nepochs = 10\n'
    )
    assert preset_methods(root=tmp_path) == ["newmethod"]
    preset = find_preset("newmethod", "cifar10", 1, root=tmp_path)
    cfg = preset.config()
    assert dict(cfg.method.params) == {"syn_steps": 20, "expert_epochs": 2}
    assert cfg.method.iterations == 300 and cfg.model == "convnet_bn" and (cfg.eval.runs, cfg.eval.epochs) == (5, 10)
    assert preset.apply(RunConfig(seed=4)).seed == 4


@pytest.mark.parametrize(
    "text, words",
    [
        ("[mnist.ipc1\nlr_img = 1", "is not valid TOML"),
        ("[mnsit.ipc1]\nlr_img = 1", "[mnsit] is not a registered dataset. Did you mean 'mnist'?"),
        ("[mnist.ten]\nlr_img = 1", "[mnist.ten] is not a setting table"),
        ("[mnist]\nlr_img = 1", "[mnist.lr_img] is not a setting table"),
        ("[mnist.ipc1.evl]\nruns = 1", "[mnist.ipc1.evl]: a setting may hold only these sub-tables: eval. Did you mean 'eval'?"),
        ("[mnist.ipc1.eval]\nrnus = 1", "preset dm/mnist/ipc1 in"),
        ("[mnist.ipc1.eval]\nrnus = 1", "Did you mean 'runs'"),
        ("[mnist.ipc1]\niterations = 'many'", "method.iterations must be a whole number"),
        ("[mnist.ipc1]\nmodel = 3", "[mnist.ipc1] model = 3 is not a registered model"),
        ("[defaults]\nmodel = 'convnett'", "Did you mean 'convnet'?"),
        ("defaults = 3", "'defaults' must be a table"),
        ("lr_img = 3", "top-level key 'lr_img' is not a table"),
    ],
)
def test_a_malformed_preset_file_gets_a_clear_error(tmp_path: Path, text: str, words: str):
    path = tmp_path / "dm.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_preset_file(path)
    assert words in str(err.value) and str(path) in str(err.value)
    with pytest.raises(ConfigError, match="dm.toml"):
        find_preset("dm", "mnist", 1, root=tmp_path)


def test_unknown_preset_method_is_named(tmp_path: Path):
    with pytest.raises(UnknownNameError, match="Did you mean 'dsa'"):
        list_presets("dsaa")
    assert find_preset("nope", "mnist", 10) is None
    with pytest.raises(ConfigError, match="does not exist"):
        load_preset_file(tmp_path / "missing.toml")


def test_list_presets_command(capsys):
    assert main(["list", "presets"]) == 0
    out = capsys.readouterr().out
    assert "dsa     mnist" in out and "dm      cifar100" in out and "iterations=20000" in out
    assert main(["list", "presets", "--method", "dc"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("dc ", "dm ", "dsa "))]
    assert len(rows) == 15 and all(r.startswith("dc ") for r in rows)


def test_the_fast_profile_ships_its_measured_entry():
    assert "fast/*.toml" in tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["securedd.presets"]
    fast = list_presets(profile="fast")
    assert fast and all(p.profile == "fast" and p.name.startswith("fast:") for p in fast)
    entry = find_preset("dm", "mnist", 10, profile="fast")
    assert entry is not None and entry.source == "securedd/presets/fast/dm.toml"
    cfg = entry.config()
    assert (cfg.method.params["precision"], cfg.method.params["compile"]) == ("bf16", True)
    assert find_preset("dm", "mnist", 10).values["method"]["iterations"] == 20_000  # the published one is untouched
    with pytest.raises(UnknownNameError, match="unknown preset profile 'quick'"):
        list_presets(profile="quick")


def test_distill_fast_picks_the_method_and_lets_flags_win():
    cfg, preset = _resolve("--dataset", "mnist", "--ipc", "10", "--fast")
    assert preset is not None and preset.name == "fast:dm/mnist/ipc10"
    assert cfg.method.name == "dm" and cfg.method.params["precision"] == "bf16"
    cfg, _ = _resolve("--dataset", "mnist", "--ipc", "10", "--fast", "method.iterations=7", "--seed", "3")
    assert (cfg.method.iterations, cfg.seed) == (7, 3)


@pytest.mark.parametrize("argv, words", [
    (["--dataset", "svhn", "--fast"], "the fast profile has no entry for svhn (entries: fast:dm/mnist/ipc10"),
    (["--dataset", "mnist", "--method", "dsa", "--fast"], "no entry for dsa on mnist"),
    (["--dataset", "mnist", "--fast", "--no-preset"], "drop --config and --no-preset, or drop --fast"),
])
def test_distill_fast_refuses_what_it_cannot_honour(argv, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
        _resolve(*argv)


def test_list_presets_fast(capsys):
    assert main(["list", "presets", "--fast"]) == 0
    out = capsys.readouterr().out
    assert "dm      mnist    ipc10" in out and "precision=bf16" in out
    assert "--fast" in out
