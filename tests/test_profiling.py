"""The phase timer: exclusive nesting, nothing counted outside a profile, and --profile's table."""

import time

import torch

from securedd.cli.main import main
from securedd.profiling import Profile, phase, profiling
from securedd.training import TrainSettings, train_model


def test_nested_phases_are_counted_exclusively():
    with profiling() as prof:
        with phase("forward"):
            time.sleep(0.02)
            with phase("augmentation"):
                time.sleep(0.05)
    assert prof.calls == {"forward": 1, "augmentation": 1}
    assert prof.seconds["augmentation"] >= 0.05
    assert 0.02 <= prof.seconds["forward"] < 0.05  # the inner phase's time is not the outer's too
    assert sum(prof.seconds.values()) <= prof.wall + 1e-6


def test_nothing_is_counted_outside_a_profile_or_when_disabled():
    with phase("forward"):
        pass
    with profiling(enabled=False) as prof:
        with phase("forward"):
            pass
    assert prof.seconds == {} and prof.wall == 0.0


def test_a_phase_left_by_an_exception_still_closes():
    with profiling() as prof:
        try:
            with phase("backward"):
                raise ValueError
        except ValueError:
            pass
        with phase("optimiser"):
            pass
    assert prof.calls == {"backward": 1, "optimiser": 1}


def test_training_marks_its_phases():
    gen = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    with profiling() as prof:
        train_model(model, torch.randn(20, 1, 8, 8), torch.arange(20) % 10,
                    TrainSettings(epochs=2, dsa_strategy="crop_scale"), gen)
    assert {"data", "augmentation", "forward", "backward", "optimiser"} <= set(prof.seconds)
    assert prof.calls["optimiser"] == 2  # one batch per epoch


def test_table_adds_up_to_the_wall_time():
    prof = Profile(wall=2.0)
    prof.seconds.update(forward=1.0, backward=0.5)
    prof.calls.update(forward=3, backward=3)
    table = prof.table()
    assert "| forward | 1.00 | 50.0% | 3 |" in table and "| other | 0.50 | 25.0% | |" in table


def test_cli_profile_prints_where_the_time_went(tmp_path, capsys):
    out = tmp_path / "h.safetensors"
    assert main(["distill", "--dataset", "digits", "--method", "dm", "--ipc", "1", "--quiet", "--profile",
                 "method.iterations=2", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "where the time went" in err
    for name in ("data", "augmentation", "forward", "backward", "optimiser", "wall"):
        assert f"| {name}" in err or f"| **{name}**" in err
