"""Compiled training and scoring: the auto rule, and that compiling changes neither the result
(beyond float rounding) nor its determinism."""

import pytest
import torch

from securedd.evaluation import evaluate_set
from securedd.training import TrainSettings, score_model
from securedd.training.compiled import COMPILE_WORK, CompiledForward, resolve_compile, worth_compiling


def test_auto_compiles_only_work_that_pays_back_the_compilation():
    assert worth_compiling(100, 3 * 32 * 32, 1000, 3)  # CIFAR-10 IPC 10, the protocol
    assert not worth_compiling(100, 8 * 8, 20, 3)  # a test-sized digits set
    assert worth_compiling(1, 1, int(COMPILE_WORK)) and not worth_compiling(1, 1, int(COMPILE_WORK) - 1)
    images = torch.zeros(10, 1, 8, 8)
    assert resolve_compile(None, images, 10) is False
    assert resolve_compile(True, images, 10) is True  # an explicit setting wins either way
    assert resolve_compile(False, torch.zeros(100, 3, 32, 32), 1000, 3) is False


@pytest.fixture(scope="module")
def trained(train_small_convnet):
    return {"eager": train_small_convnet(compile=False), "compiled": train_small_convnet(compile=True),
            "compiled again": train_small_convnet(compile=True)}


def test_compiled_training_is_deterministic(trained):
    for a, b in zip(trained["compiled"].parameters(), trained["compiled again"].parameters(), strict=True):
        assert torch.equal(a, b)


def test_compiled_training_follows_the_eager_trajectory(trained):
    # the same shuffles, augmentation draws and updates: parameters agree to float rounding
    for a, b in zip(trained["compiled"].parameters(), trained["eager"].parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)


def test_compiled_scoring_matches_eager(trained, digits_test):
    model = trained["eager"]
    eager, compiled = score_model(model, digits_test), score_model(model, digits_test, compile=True)
    assert abs(eager.accuracy - compiled.accuracy) <= 100 / len(digits_test)  # at most one borderline image
    torch.testing.assert_close(eager.per_class_loss, compiled.per_class_loss, rtol=1e-4, atol=1e-5)


def test_evaluation_records_whether_it_compiled(digits_train, digits_test):
    images, labels = digits_train.images[:20], digits_train.labels[:20]
    report = evaluate_set(images, labels, digits_test, models=["convnet_tiny"], runs=1, progress=False,
                          settings=TrainSettings(epochs=2))
    assert report.protocol["compile"] is False  # auto: far too little work to compile


def test_a_failing_compiler_falls_back_to_the_eager_model(monkeypatch, caplog):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    forward = CompiledForward(model)

    def broken(x):
        raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(forward, "compiled", broken)
    x = torch.randn(4, 1, 8, 8)
    with caplog.at_level("WARNING"):
        out = forward(x)
    torch.testing.assert_close(out, model(x))
    assert forward.failed and "no C++ compiler found" in caplog.text
    assert forward(x).shape == (4, 10)  # and stays eager
