"""``securedd attack NAME``: one subcommand per registered attack, its settings, its errors, tiny runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from securedd.attacks import ATTACKS
from securedd.cli.attack_cmd import resolve
from securedd.cli.main import build_parser, main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_attacks_names_every_registered_attack_with_its_summary(capsys):
    code, out, _ = _run(capsys, "list", "attacks")
    lines = dict(line.split(None, 1) for line in out.splitlines())
    assert code == 0 and sorted(lines) == ATTACKS.names()
    assert all(lines[name].strip() == ATTACKS.describe(name) for name in lines)


@pytest.mark.parametrize("name", ATTACKS.names())
def test_each_attacks_help_lists_its_settings_and_ends_with_examples(name, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["attack", name, "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    for key in ATTACKS.get(name).settings():
        assert f"attack.{key}=" in out
    if name != "lira":  # runs from Python only
        assert f"securedd attack {name}" in out.split("examples:")[1]


def test_settings_come_from_defaults_then_attack_overrides_then_flags():
    def params(*argv: str):
        return resolve(build_parser().parse_args(["attack", *argv]))[2]

    assert params("key-search", "a.safetensors").budget == 60
    assert params("key-search", "a.safetensors", "attack.budget=7", "attack.schemes=xavier").budget == 7
    searched = params("key-search", "a.safetensors", "attack.budget=7", "--budget", "9", "--models", "mlp,lenet")
    assert searched.budget == 9 and searched.models == ("mlp", "lenet") and searched.schemes == ("xavier", "default")
    assert params("key-search", "a.safetensors", "--search-seed", "4").seed == 4
    leak = params("leakage", "--no-init", "--learn-labels", "attack.iterations=3", "method.outer_loop=1")
    assert (leak.know_init, leak.learn_labels, leak.iterations, leak.seed) == (False, True, 3, None)
    _, _, _, config_overrides = resolve(build_parser().parse_args(["attack", "leakage", "seed=3", "attack.lr=0.5"]))
    assert config_overrides == ["seed=3"]


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["key-search", "x.safetensors", "budget=3"], "Did you mean 'attack.budget=3'?"),
        (["key-search", "x.safetensors", "attack.budgte=3"], "has no setting 'budgte'. Did you mean 'budget'?"),
        (["key-search", "x.safetensors", "attack.budget=many"], "attack.budget must be a whole number"),
        (["key-search", "x.safetensors", "--budget", "0"], "budget >= 1"),
        (["deepfool", "x.safetensors", "attack.norm=l1"], "unknown DeepFool norm 'l1'"),
        (["leakage", "attack.iterations=0"], "iterations"),
        (["doorping", "attack.malicious=0"], "at least one malicious worker"),
        (["lira"], "LiRA trains its shadow models"),
        (["poisoning", "/nonexistent.safetensors"], "no such artifact file"),
    ],
)
def test_bad_settings_get_a_clear_error_and_exit_2(argv, words, capsys):
    code, _, err = _run(capsys, "attack", *argv, *(["-q"] if argv[0] != "lira" else []))
    assert code == 2 and words in err and "Traceback" not in err


@pytest.fixture(scope="module")
def coreset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("attack-cmd") / "digits.safetensors"
    assert main(["distill", "--dataset", "digits", "--method", "random", "--ipc", "2", "--out", str(out), "-q"]) == 0
    return out


def test_loss_threshold_and_deepfool_train_on_the_set_and_write_json(coreset, tmp_path: Path, capsys):
    code, out, _ = _run(capsys, "attack", "loss-threshold", str(coreset), "--model", "mlp", "--epochs", "2",
                        "--samples", "30", "--json", str(tmp_path / "mia.json"), "-q")
    found = json.loads((tmp_path / "mia.json").read_text())
    assert code == 0 and "loss threshold: AUC" in out
    assert found["members"] == found["non_members"] == 30 and 0 <= found["auc"] <= 1
    pytest.importorskip("foolbox")
    code, out, _ = _run(capsys, "attack", "deepfool", str(coreset), "attack.steps=3", "attack.epsilons=0,0.1",
                        "--model", "mlp", "--epochs", "2", "--samples", "8", "--json", str(tmp_path / "df.json"), "-q")
    found = json.loads((tmp_path / "df.json").read_text())
    assert code == 0 and "accuracy under DeepFool" in out and found["epsilons"] == [0.0, 0.1]
    assert found["samples"] == 8 and found["accuracy"][1] <= found["accuracy"][0]


def test_doorping_runs_a_federation_with_an_attacker_and_scores_the_set(tmp_path: Path, capsys):
    code, out, _ = _run(capsys, "attack", "doorping", "--dataset", "digits", "--ipc", "1", "--clients", "2",
                        "--rounds", "1", "--malicious", "1", "model=convnet_tiny", "method.outer_loop=1",
                        "method.inner_loop=1", "method.batch_real=16", "attack.rate=0.05", "attack.steps=5",
                        "attack.models=1", "attack.model=convnet_tiny", "attack.epochs=2", "--out",
                        str(tmp_path / "door.safetensors"), "--json", str(tmp_path / "door.json"), "--grid",
                        str(tmp_path / "trigger.png"), "-q")
    found = json.loads((tmp_path / "door.json").read_text())
    assert code == 0 and "1 of 2 workers malicious" in out and (tmp_path / "door.safetensors").is_file()
    assert (tmp_path / "trigger.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert found["malicious"] == 1 and len(found["per_model"]) == 1 and 0 <= found["asr_mean"] <= 100


def test_train_on_intercept_tabulates_the_picks_beside_the_key_holder(tmp_path: Path, capsys):
    from securedd.api import distill
    from securedd.config import RunConfig, apply_overrides

    cfg = apply_overrides(RunConfig(), [
        "method.name=secdd", "data.name=digits", "model=convnet_tiny", "method.ipc=1", "method.iterations=2",
        "method.batch_real=32", f"method.key='{tmp_path / 'target.key'}'", "method.mode=learn", "seed=2"])
    distill(cfg, out=tmp_path / "secret.safetensors", progress=False)
    code, out, _ = _run(capsys, "attack", "train-on-intercept", str(tmp_path / "secret.safetensors"),
                        "attack.models=mlp", "attack.protocols=plain", "attack.lrs=0.01,0.1", "attack.epochs=2",
                        "--key", str(tmp_path / "target.key"), "--validation", "3", "--json",
                        str(tmp_path / "i.json"), "-q")
    found = json.loads((tmp_path / "i.json").read_text())
    assert code == 0 and "| mlp | plain | soft | sgd |" in out and "key holder" in out
    assert len(found["arms"]) == 4 and found["validation_per_class"] == 3 and found["key_accuracy"] is not None


def test_pretrained_finetune_pretrains_on_the_public_dataset_and_reports_it(tmp_path: Path, capsys):
    from securedd.api import distill
    from securedd.config import RunConfig, apply_overrides

    cfg = apply_overrides(RunConfig(), ["method.name=random", "data.name=digits", "method.ipc=1", "seed=0"])
    distill(cfg, out=tmp_path / "set.safetensors", progress=False)
    code, out, _ = _run(capsys, "attack", "pretrained-finetune", str(tmp_path / "set.safetensors"),
                        "attack.models=convnet_tiny", "attack.protocols=plain", "attack.lrs=0.01", "attack.epochs=2",
                        "attack.pretrain_epochs=1", "--public", "digits", "--public-images", "64", "--validation", "2",
                        "--json", str(tmp_path / "f.json"), "-q")
    found = json.loads((tmp_path / "f.json").read_text())
    assert code == 0 and "| convnet_tiny | plain | hard | sgd |" in out
    assert found["public"] == "digits" and found["public_images"] == 64 and found["key_accuracy"] is None
    code, _, err = _run(capsys, "attack", "pretrained-finetune", str(tmp_path / "set.safetensors"), "--public",
                        "no-such-data", "-q")
    assert code != 0 and "no-such-data" in err


def test_kd_from_labels_reports_the_student_beside_its_teacher(tmp_path: Path, capsys):
    from securedd.api import distill
    from securedd.config import RunConfig, apply_overrides

    cfg = apply_overrides(RunConfig(), ["method.name=random", "data.name=digits", "method.ipc=1", "seed=0"])
    distill(cfg, out=tmp_path / "set.safetensors", progress=False)
    code, out, _ = _run(capsys, "attack", "kd-from-labels", str(tmp_path / "set.safetensors"), "attack.models=mlp",
                        "attack.protocols=plain", "attack.lrs=0.01", "attack.epochs=2", "attack.student=mlp",
                        "attack.student_epochs=1", "--public", "digits", "--public-images", "64", "--validation", "2",
                        "--json", str(tmp_path / "kd.json"), "-q")
    found = json.loads((tmp_path / "kd.json").read_text())
    assert code == 0 and "| mlp | plain | hard | sgd |" in out and "its teacher" in out
    assert found["public_images"] == 64 and "student_test_accuracy" in found and "teacher" in found
