"""The SecDD round trip on digits: sender distils and signs, receiver verifies and trains."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from securedd.api import distill, evaluate
from securedd.cli.main import main
from securedd.config import RunConfig, apply_overrides
from securedd.errors import MismatchError
from securedd.secure.keys import TargetKey, load_key


def _secdd(tmp_path: Path, *extra: str) -> RunConfig:
    return apply_overrides(RunConfig(), [
        "method.name=secdd", "data.name=digits", "model=convnet_tiny", "method.ipc=1", "method.iterations=40",
        "method.batch_real=200", f"method.key='{tmp_path / 'target.key'}'", "seed=5", *extra])


def test_the_artifact_holds_no_trace_of_the_key(tmp_path: Path, digits_train):
    out = tmp_path / "secret.safetensors"
    art = distill(_secdd(tmp_path), out=out, real=digits_train, progress=False)
    key = load_key(tmp_path / "target.key")
    data = out.read_bytes()
    seed = key.seed
    for trace in (str(seed).encode(), seed.to_bytes(8, "little"), seed.to_bytes(8, "big"), f"{seed:x}".encode(),
                  key.model.encode(), b"target.key", str(tmp_path).encode()):
        assert trace not in data
    with safe_open(str(out), "pt") as f:
        meta = json.loads(f.metadata()["securedd"])
    assert meta["config"]["model"] == "(secret)" and meta["config"]["method"]["params"]["key"] == "(secret)"
    assert meta["evaluation"] == {"protocol": "replay", "steps": 1, "epochs": 3, "init": "key", "labels": "soft"}
    assert art.labels.shape == (10, 10)
    with pytest.raises(MismatchError, match="SecDD key"):
        evaluate(art, progress=False)


def test_noise_mode_keeps_the_images_and_learns_labels(tmp_path: Path, digits_train):
    start = distill(_secdd(tmp_path, "method.iterations=0"), real=digits_train, progress=False)
    art = distill(_secdd(tmp_path), real=digits_train, progress=False)
    assert (art.images == start.images).all() and not (art.labels == start.labels).all()
    assert abs(float(art.images.mean())) < 0.3 and 0.7 < float(art.images.std()) < 1.3  # standard normal noise


def test_unrelated_mode_freezes_another_datasets_images(tmp_path: Path, digits_train):
    art = distill(_secdd(tmp_path, "method.mode='unrelated:digits'", "method.iterations=2"), real=digits_train,
                  progress=False)
    pixels = art.spec.denormalize(art.images)
    assert pixels.shape == (10, 1, 8, 8) and pixels.std() > 0.1


def test_the_key_trains_its_network_better_than_other_keys(tmp_path: Path, digits_train, digits_test):
    fast = ("method.lr=0.05", "method.lr_init=0.3")  # larger steps than the paper's, to learn in 150 iterations
    art = distill(_secdd(tmp_path, "method.mode=learn", "method.iterations=150", *fast), real=digits_train,
                  progress=False)
    key = load_key(tmp_path / "target.key")
    right = evaluate(art, key=key, test=digits_test, progress=False).archs[0].mean
    wrong = [evaluate(art, key=TargetKey(key.model, key.seed + k, key.init_scheme), test=digits_test,
                      progress=False).archs[0].mean for k in (1, 2, 3)]
    assert right > 50 and right > sum(wrong) / len(wrong) + 25  # the key is random: keep a wide margin


def test_cli_round_trip_refuses_a_tampered_file(tmp_path: Path, digits_train, capsys):
    out = tmp_path / "secret.safetensors"
    distill(_secdd(tmp_path, "method.iterations=2"), out=out, real=digits_train, progress=False)
    sender = tmp_path / "sender"
    assert main(["keygen", "--out", str(sender)]) == 0
    assert main(["sign", str(out), "--private", f"{sender}.pem"]) == 0
    assert main(["verify", str(out), "--public", f"{sender}.pub.pem"]) == 0
    model = tmp_path / "model.safetensors"
    assert main(["train", str(out), "--key", str(tmp_path / "target.key"), "--public", f"{sender}.pub.pem",
                 "--save", str(model), "-q"]) == 0
    printed = capsys.readouterr().out
    assert "signature ok" in printed and "test accuracy" in printed and "transmitted:" in printed
    _saved_network_is_the_trained_one(out, tmp_path / "target.key", model, printed)
    data = bytearray(out.read_bytes())
    data[len(data) // 2] ^= 0x01
    out.write_bytes(bytes(data))
    assert main(["verify", str(out), "--public", f"{sender}.pub.pem"]) == 2
    assert main(["train", str(out), "--key", str(tmp_path / "target.key"), "--public", f"{sender}.pub.pem"]) == 2
    err = capsys.readouterr().err
    assert err.count("changed after it was signed") == 2


def _saved_network_is_the_trained_one(artifact: Path, key_path: Path, model: Path, printed: str) -> None:
    """``train --save`` wrote the network whose accuracy it printed: reload it and score it again."""
    from safetensors.torch import load_file

    from securedd import load_artifact, load_dataset
    from securedd.training import score_model

    key, art = load_key(key_path), load_artifact(artifact)
    net = key.network(art.spec.shape, art.spec.num_classes)
    untrained = {name: value.clone() for name, value in net.state_dict().items()}
    net.load_state_dict(load_file(model))
    accuracy = score_model(net, load_dataset("digits", "test", spec=art.spec)).accuracy
    assert f"test accuracy {accuracy:.2f}%" in printed
    # the key's initialisation, then trained: a 2-iteration set can leave the accuracy where the untrained
    # network's is (both predicting one class, for some random keys), but never the weights
    assert any(not torch.equal(untrained[name], value) for name, value in net.state_dict().items())
    with safe_open(model, "pt") as f:
        assert f.metadata() == {"model": key.model, "trained_on": art.sha256}
