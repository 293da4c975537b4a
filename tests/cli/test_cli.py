"""Command-line smoke tests: every subcommand, its --help examples, and its errors."""

import importlib.util
import json
from pathlib import Path

import pytest

from securedd.cli.main import SUBCOMMANDS, build_parser, main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", ["demo", "distill", "evaluate", "show", "list", "experts", "keygen", "sign",
                                     "verify", "train", "attack", "pool", "adapt", "poison", "federate", "audit"])
def test_every_help_ends_with_runnable_examples(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    assert "examples:" in out and f"securedd {command}" in out.split("examples:")[1]
    assert len(SUBCOMMANDS) == 12 and build_parser().prog == "securedd"


def test_list_models_methods_datasets(capsys):
    code, out, _ = run(capsys, "list", "models")
    assert code == 0 and all(m in out for m in ["convnet", "lenet", "alexnet", "vgg11", "resnet18", "resnet18_bn", "mlp"])
    assert "random" in run(capsys, "list", "methods")[1] and "kcenter" in run(capsys, "list", "methods")[1]
    assert "imagefolder:PATH" in run(capsys, "list", "datasets")[1]


def test_distill_is_byte_deterministic_and_show_writes_a_grid(tmp_path: Path, capsys):
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    for path in (a, b):
        code, out, _ = run(capsys, "distill", "--dataset", "digits", "--method", "kcenter", "--ipc", "2",
                           "--seed", "4", "--out", str(path), "method.embed_steps=3")
        assert code == 0 and "resolved config" in out and f"wrote {path}" in out
    assert a.read_bytes() == b.read_bytes()
    code, out, _ = run(capsys, "show", str(a))
    assert code == 0 and (tmp_path / "a.png").stat().st_size > 1000 and "kcenter" in out and "verified" in out


def test_evaluate_prints_table_and_writes_json(tmp_path: Path, capsys):
    art = tmp_path / "r.safetensors"
    run(capsys, "distill", "--method", "random", "--ipc", "2", "--out", str(art), "--quiet")
    code, out, _ = run(capsys, "evaluate", str(art), "--models", "convnet_tiny,mlp", "--runs", "2", "--epochs", "3",
                       "--no-dsa", "--json", str(tmp_path / "e.json"), "--quiet")
    assert code == 0 and "| convnet_tiny | 2 |" in out and "| mlp | 2 |" in out and "augmentation off" in out
    assert "per-class results, mlp:" in out and "| accuracy (%) |" in out
    assert (tmp_path / "e.json").is_file()


def test_demo_writes_artifacts_grids_and_report(tmp_path: Path, capsys):
    code, out, _ = run(capsys, "demo", "--ipc", "1", "--runs", "1", "--epochs", "2", "--out-dir", str(tmp_path),
                       "--quiet")
    assert code == 0 and "| method | images | accuracy (%) | whole dataset (%) |" in out
    assert "| herding | 10 |" in out and "| random | 10 |" in out
    assert {"demo.md", "demo.json", "digits_herding_ipc1.png", "digits_random_ipc1.safetensors", "secret.safetensors",
            "secret.safetensors.sig", "target.key"} <= {p.name for p in tmp_path.iterdir()}
    assert "SecDD round trip" in out and "the key's seed (receiver)" in out
    rows = {r["network"]: r["accuracy"] for r in json.loads((tmp_path / "demo.json").read_text())["secdd"]}
    # the key is random on every run: margins measured over fresh keys were 41 to 57 points
    assert rows["convnet_tiny, the key's seed (receiver)"] > rows["convnet_tiny, 3 other seeds (mean)"] + 25
    federated = json.loads((tmp_path / "demo.json").read_text())["federated"]
    if importlib.util.find_spec("flwr") is None:
        assert "Skipped: install the [fl] extra" in out
    else:  # the SFDD round ran on Flower's simulation engine
        assert "SFDD): 3 clients, 10 rounds" in out and (tmp_path / "federated.safetensors").is_file()
        assert federated["images"] == 10 and 0 <= federated["mean"] <= 100


@pytest.mark.parametrize(
    "argv, words",
    [
        (["distill", "--dataset", "mnst"], "unknown dataset 'mnst'. Did you mean 'mnist'?"),
        (["distill", "--method", "herdin"], "Did you mean 'herding'?"),
        (["distill", "--ipc", "500"], "smallest class"),
        (["distill", "--dataset", "mnist", "--data-root", "/nonexistent/dir"], "does not exist"),
        (["distill", "method.iterations=-1", "--method", "random"], "iterations must be >= 0"),
        (["evaluate", "/nonexistent.safetensors"], "no such artifact file"),
        (["distill", "--config", "/nonexistent.toml"], "does not exist"),
        (["distill", "--device", "cuda:7"], "cuda:7"),
        (["distill", "--device", "tpu"], "not a torch device"),
    ],
)
def test_bad_input_gets_a_clear_error_and_exit_2(argv, words, capsys, tmp_path: Path):
    code, _, err = run(capsys, *argv, *(["--out", str(tmp_path / "x.safetensors")] if argv[0] == "distill" else []))
    assert code == 2 and words in err and "Traceback" not in err


def test_unknown_model_in_evaluate(tmp_path: Path, capsys):
    art = tmp_path / "r.safetensors"
    run(capsys, "distill", "--method", "random", "--ipc", "1", "--out", str(art), "--quiet")
    code, _, err = run(capsys, "evaluate", str(art), "--models", "resnet", "--epochs", "1", "--quiet")
    assert code == 2 and "Did you mean 'resnet18'" in err


def test_tampered_artifact_is_refused_with_the_file_named(tmp_path: Path, capsys):
    art = tmp_path / "r.safetensors"
    run(capsys, "distill", "--method", "random", "--ipc", "1", "--out", str(art), "--quiet")
    data = bytearray(art.read_bytes())
    data[-3] ^= 0xFF
    art.write_bytes(bytes(data))
    for command in ("show", "evaluate"):
        code, _, err = run(capsys, command, str(art))
        assert code == 2 and str(art) in err and "SHA-256 mismatch" in err


def test_artifact_for_other_dataset_does_not_fit(tmp_path: Path, capsys):
    import numpy as np

    rng = np.random.default_rng(0)
    npz = tmp_path / "rgb.npz"
    np.savez(npz, x_train=rng.integers(0, 255, (40, 8, 8, 3), dtype=np.uint8), y_train=np.arange(40) % 10,
             x_test=rng.integers(0, 255, (10, 8, 8, 3), dtype=np.uint8), y_test=np.arange(10) % 10)
    art = tmp_path / "rgb.safetensors"
    assert run(capsys, "distill", "--dataset", f"npz:{npz}", "--method", "random", "--ipc", "1", "--out", str(art),
               "--quiet")[0] == 0
    from securedd import evaluate, load_artifact, load_dataset
    from securedd.errors import MismatchError

    with pytest.raises(MismatchError, match="does not|test data"):
        evaluate(load_artifact(art), test=load_dataset("digits", "test"), epochs=1, runs=1, progress=False)
