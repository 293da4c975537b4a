"""``securedd experts``: disk estimate, shards, resume, and a distillation from the experts."""

from pathlib import Path

from securedd.cli.main import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_experts_on_digits_then_resume_then_mtt(tmp_path: Path, capsys):
    out = tmp_path / "experts"
    argv = ("experts", "--dataset", "digits", "--model", "mlp", "--experts", "2", "--epochs", "2", "--out", str(out))
    code, text, _ = run(capsys, *argv, "--quiet")
    assert code == 0 and "disk estimate: 26,122 parameters x 4 B x 3 snapshots x 2 experts = 626.9 kB" in text
    assert "0 finished" in text and "2 trained now, 0 skipped" in text
    assert sorted(p.name for p in out.iterdir()) == ["expert_0000.safetensors", "expert_0001.safetensors", "manifest.json"]
    code, text, _ = run(capsys, *argv, "--quiet")
    assert code == 0 and "2 finished, 0 B to write" in text and "0 trained now, 2 skipped" in text
    code, text, _ = run(capsys, "distill", "--dataset", "digits", "--model", "mlp", "--method", "mtt", "--ipc", "1",
                        "--out", str(tmp_path / "m.safetensors"), "--quiet", f"method.experts={out}",
                        "method.expert_epochs=1", "method.max_start_epoch=1", "method.syn_steps=2", "method.iterations=1")
    assert code == 0 and "wrote" in text


def test_mismatched_or_missing_experts_exit_2(tmp_path: Path, capsys):
    out = tmp_path / "experts"
    assert run(capsys, "experts", "--model", "mlp", "--experts", "1", "--epochs", "1", "--out", str(out), "-q")[0] == 0
    code, _, err = run(capsys, "experts", "--model", "mlp", "--experts", "1", "--epochs", "2", "--out", str(out), "-q")
    assert code == 2 and "other settings" in err and "Traceback" not in err
    code, _, err = run(capsys, "distill", "--method", "mtt", "--ipc", "1", "--out", str(tmp_path / "x.safetensors"),
                       f"method.experts={tmp_path / 'none'}")
    assert code == 2 and "securedd experts --dataset digits --model convnet" in err
