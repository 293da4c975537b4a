"""Command-line smoke tests: every subcommand, its --help examples, and its errors."""

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
    assert code == 0 and (tmp_path / "a.png").stat().st_size > 1000 and "kcenter" in out
    assert "integrity ok, not signed" in out and "verified" not in out  # a hash alone proves no sender


def test_evaluate_prints_table_and_writes_json(tmp_path: Path, capsys):
    art = tmp_path / "r.safetensors"
    run(capsys, "distill", "--method", "random", "--ipc", "2", "--out", str(art), "--quiet")
    code, out, _ = run(capsys, "evaluate", str(art), "--models", "convnet_tiny,mlp", "--runs", "2", "--epochs", "3",
                       "--no-dsa", "--json", str(tmp_path / "e.json"), "--quiet")
    assert code == 0 and "| convnet_tiny | 2 |" in out and "| mlp | 2 |" in out and "augmentation off" in out
    assert "per-class results, mlp:" in out and "| accuracy (%) |" in out
    assert (tmp_path / "e.json").is_file()
    code, out, _ = run(capsys, "evaluate", str(art), "--models", "mlp", "--runs", "1", "--epochs", "2", "--no-dsa",
                       "--precision", "bf16", "--json", str(tmp_path / "b.json"), "--quiet")
    assert code == 0 and "augmentation off, bf16" in out
    assert json.loads((tmp_path / "b.json").read_text())["protocol"]["precision"] == "bf16"


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
        # every method checks the model it records, coresets included
        (["distill", "--method", "herding", "--model", "convnett"], "unknown model 'convnett'. Did you mean 'convnet'?"),
        (["distill", "--method", "random", "--model", "convnett"], "Did you mean 'convnet'?"),
        # a misspelt setting shared by every method gets its suggestion and is listed
        (["distill", "--method", "dc", "method.iteratons=5"], "Did you mean 'iterations'? Settings of every method: "
                                                               "name, ipc, iterations, checkpoint_every"),
        (["distill", "--method", "random", "--resume"], "nothing to resume: there is no checkpoint at"),
    ],
)
def test_bad_input_gets_a_clear_error_and_exit_2(argv, words, capsys, tmp_path: Path):
    code, _, err = run(capsys, *argv, *(["--out", str(tmp_path / "x.safetensors")] if argv[0] == "distill" else []))
    assert code == 2 and words in err and "Traceback" not in err


def _example_lines(parser) -> list[list[str]]:
    """Every example command in ``parser``'s help epilogs, as argument lists (``a && b`` gives two)."""
    import shlex

    lines = []
    for action in parser._subparsers._group_actions:
        for sub in dict.fromkeys(action.choices.values()):
            for line in (sub.epilog or "").split("examples:")[-1].splitlines():
                for part in line.split("&&"):
                    words = shlex.split(part.strip())
                    if words[:1] == ["securedd"]:
                        lines.append(words[1:])
    return lines


def test_every_help_example_parses_with_the_flags_that_exist(capsys):
    examples = _example_lines(build_parser())
    assert len(examples) > 40 and ["train", "secret.safetensors", "--key", "target.key", "--public", "sender.pub.pem",
                                   "--save", "model.safetensors"] in examples
    for argv in examples:
        try:
            build_parser().parse_args(argv)
        except SystemExit:
            pytest.fail(f"the help example 'securedd {' '.join(argv)}' does not parse: {capsys.readouterr().err}")


def test_every_readme_command_parses_as_shown(capsys):
    import shlex

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in readme.split("```sh\n")[1:]]
    commands = []
    for line in (x for b in blocks for x in b.splitlines()):
        for part in line.split("#")[0].split("&&"):
            words = shlex.split(part.replace("~/", "/home/u/"))
            if words[:1] == ["securedd"]:
                commands.append(words[1:])
            elif words[:1] == ["SECUREDD_DATA=/home/u/datasets"]:
                commands.append(words[2:])
    assert len(commands) > 20
    for argv in commands:
        try:
            build_parser().parse_args(argv)
        except SystemExit:
            pytest.fail(f"README: 'securedd {' '.join(argv)}' does not parse: {capsys.readouterr().err}")


def test_printed_config_holds_the_method_settings_the_run_uses(tmp_path: Path, capsys):
    code, out, _ = run(capsys, "distill", "--dataset", "digits", "--method", "dc", "--ipc", "1", "--no-preset",
                       "model=convnet_tiny", "method.iterations=1", "method.lr_img=0.5",
                       "--out", str(tmp_path / "dc.safetensors"))
    settings = out.split("[method.params]")[1]
    assert code == 0 and "lr_img = 0.5" in settings and "momentum_img = 0.5" in settings and "batch_real = 256" in settings
    assert "iterations = 1\n" in out
    code, out, _ = run(capsys, "distill", "--dataset", "digits", "--method", "dm", "--ipc", "1", "--no-preset",
                       "method.iterations=0", "--out", str(tmp_path / "dm.safetensors"))
    assert code == 0 and "lr_img = 0.0" in out.split("[method.params]")[1]


def test_list_datasets_gives_the_sizes_the_loader_has(capsys):
    from securedd import load_dataset

    line = next(x for x in run(capsys, "list", "datasets")[1].splitlines() if x.startswith("digits "))
    sizes = f"{len(load_dataset('digits', 'train'))}/{len(load_dataset('digits', 'test'))}"
    assert sizes == "1438/359" and line.endswith(sizes)


def test_demo_output_is_ignored_by_git():
    ignored = (Path(__file__).parents[2] / ".gitignore").read_text().split()
    assert "/demo-out/" in ignored


def test_dependency_logs_are_quiet_unless_verbose(capsys):
    import logging
    import warnings

    from securedd.cli.main import configure_logging

    try:
        for verbose in (False, True):
            configure_logging(verbose=verbose)
            logging.getLogger().info("Only testing the top-10 classes")  # foolbox's DeepFool logs so, per batch
            logging.getLogger("flwr").debug("ServerApp finished running.")
            logging.getLogger("securedd.demo").info("own progress")
            err = capsys.readouterr().err
            assert "own progress" in err and ("top-10" in err) is verbose and ("ServerApp" in err) is verbose
        configure_logging(quiet=True)
        logging.getLogger("securedd.demo").info("own progress")
        logging.getLogger("securedd.demo").warning("own warning")
        err = capsys.readouterr().err
        assert "own progress" not in err and "own warning" in err
    finally:
        root = logging.getLogger()
        root.handlers[:] = [h for h in root.handlers if not getattr(h, "_securedd", False)]
        warnings.resetwarnings()


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


def test_list_defences_shows_each_with_its_stage_and_summary(capsys):
    from securedd.defences import DEFENCES

    assert main(["list", "defences"]) == 0
    lines = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    assert sorted(lines) == DEFENCES.names()
    assert all(lines[n] == f"[{DEFENCES.get(n).stage}] {DEFENCES.describe(n)}" for n in lines)


@pytest.mark.fl
def test_federate_distribution_matching_with_a_client_defence_on_flower(tmp_path, capsys):
    pytest.importorskip("flwr")
    from securedd.artifacts import load_artifact

    out = tmp_path / "feddm.safetensors"
    assert main(["federate", "--dataset", "digits", "--method", "dm", "--ipc", "1", "--clients", "2", "--rounds", "1",
                 "model=convnet_tiny", "method.batch_real=16", "--defence", "ldpo-rld", "--k", "3", "--quiet",
                 "--out", str(out)]) == 0
    art = load_artifact(out)
    assert art.method == "sfdd-dm" and art.metadata["privacy"] == {"mechanism": "ldpo-rld", "rounds": 1}
    assert art.metadata["info"]["federated"]["defence"]["k"] == 3


@pytest.mark.fl
def test_federate_target_epsilon_sets_the_noise_the_ledger_then_reports(tmp_path, capsys):
    pytest.importorskip("flwr")
    from securedd.artifacts import load_artifact

    out = tmp_path / "dp.safetensors"
    assert main(["federate", "--dataset", "digits", "--method", "dm", "--ipc", "1", "--clients", "2", "--rounds", "2",
                 "model=convnet_tiny", "method.batch_real=16", "--defence", "localdp-gaussian", "--target-epsilon",
                 "8", "--quiet", "--out", str(out)]) == 0
    privacy = load_artifact(out).metadata["privacy"]
    assert privacy["mechanism"] == "gaussian" and 7.9 < privacy["epsilon"] <= 8.0 and privacy["rounds"] == 2
    assert f"noise multiplier {privacy['noise_multiplier']:.4f}" in capsys.readouterr().out


@pytest.mark.parametrize(("flags", "message"), [
    (["--target-epsilon", "8"], "add --defence localdp-gaussian"),
    (["--defence", "localdp-gaussian", "--target-epsilon", "8", "--noise-multiplier", "2"], "not both"),
    (["--defence", "localdp-gaussian", "--target-epsilon", "-1"], "target epsilon needs epsilon > 0"),
])
def test_federate_target_epsilon_refuses_what_it_cannot_honour(tmp_path, capsys, flags, message):
    code = main(["federate", "--dataset", "digits", "--clients", "2", "--rounds", "2", "--out",
                 str(tmp_path / "x.safetensors"), *flags])
    assert code != 0 and message in capsys.readouterr().err
    assert not (tmp_path / "x.safetensors").exists()


def _random_artifact(tmp_path: Path, capsys) -> Path:
    art = tmp_path / "r.safetensors"
    assert run(capsys, "distill", "--method", "random", "--ipc", "1", "--out", str(art), "--quiet")[0] == 0
    return art


def test_keygen_target_writes_an_owner_only_key_the_distillation_then_uses(tmp_path: Path, capsys):
    from securedd.secure.keys import load_key

    path = tmp_path / "target.key"
    code, out, _ = run(capsys, "keygen", "--target", "lenet", "--out", str(path))
    key = load_key(path)
    assert code == 0 and key.model == "lenet" and key.init_scheme == "xavier" and "out of band" in out
    assert path.stat().st_mode & 0o077 == 0
    assert str(key.seed) not in out  # the seed is never printed
    code, _, err = run(capsys, "keygen", "--target", "lenet", "--out", str(path))
    assert code == 2 and "exists" in err and load_key(path) == key  # an existing key is never overwritten
    code, _, err = run(capsys, "keygen", "--target", "no_such_net", "--out", str(tmp_path / "x.key"))
    assert code == 2 and "no_such_net" in err and not (tmp_path / "x.key").exists()


def test_show_says_signed_and_verified_only_after_checking_the_signature(tmp_path: Path, capsys):
    from securedd.secure.signing import fingerprint, load_public_key

    art = _random_artifact(tmp_path, capsys)
    sender = tmp_path / "sender"
    assert run(capsys, "keygen", "--out", str(sender))[0] == 0
    assert run(capsys, "sign", str(art), "--private", f"{sender}.pem")[0] == 0
    code, out, _ = run(capsys, "show", str(art), "--public", f"{sender}.pub.pem")
    signer = fingerprint(load_public_key(f"{sender}.pub.pem"))
    assert code == 0 and f"signed by {signer}, verified" in out
    code, out, _ = run(capsys, "show", str(art))  # a .sig beside it, but no key to check it with
    assert code == 0 and "integrity ok, signature not checked" in out and "verified" not in out
    code, _, err = run(capsys, "show", str(art), "--require-signature")
    assert code == 2 and "--require-signature" in err and "--public PEM" in err


@pytest.mark.parametrize("command", ["evaluate", "train"])
def test_train_and_evaluate_warn_without_a_signature_and_require_signature_refuses(tmp_path: Path, capsys, command):
    art = _random_artifact(tmp_path, capsys)
    extra = ["--key", str(tmp_path / "none.key")] if command == "train" else ["--models", "mlp", "--runs", "1",
                                                                               "--epochs", "1", "--no-dsa"]
    code, _, err = run(capsys, command, str(art), *extra, "--require-signature", "--quiet")
    assert code == 2 and f"securedd {command}: error: {art}: --require-signature is set but no signature" in err
    assert "Traceback" not in err
    code, _, err = run(capsys, command, str(art), *extra, "--quiet")
    assert f"securedd {command}: warning: {art}: no signature checked (integrity ok, not signed)" in err
    assert code == (0 if command == "evaluate" else 2)  # train then needs its key


def test_evaluate_with_a_checked_signature_does_not_warn(tmp_path: Path, capsys):
    art = _random_artifact(tmp_path, capsys)
    sender = tmp_path / "sender"
    run(capsys, "keygen", "--out", str(sender))
    run(capsys, "sign", str(art), "--private", f"{sender}.pem")
    code, out, err = run(capsys, "evaluate", str(art), "--models", "mlp", "--runs", "1", "--epochs", "1", "--no-dsa",
                         "--public", f"{sender}.pub.pem", "--require-signature", "--quiet")
    assert code == 0 and ", verified" in out and "warning" not in err
