"""bf16 mixed precision: a checked setting, deterministic, and close to fp32 training and scoring."""

import pytest
import torch
from torch.nn.utils import parameters_to_vector

from securedd.api import evaluate
from securedd.config import EvalConfig
from securedd.errors import ConfigError
from securedd.evaluation import evaluate_set
from securedd.models import create_model
from securedd.precision import PRECISIONS, autocast, check_precision
from securedd.training import TrainSettings, score_model


def test_only_known_precisions_are_accepted():
    assert PRECISIONS == ("fp32", "bf16")
    for bad in ("fp16", "BF16", "", None, 16):
        with pytest.raises(ConfigError, match="eval.precision must be one of fp32, bf16"):
            EvalConfig(precision=bad)  # type: ignore[arg-type]
    assert check_precision("bf16") == "bf16"


def test_fp32_leaves_arithmetic_alone_and_bf16_casts_products():
    x = torch.randn(4, 4)
    with autocast("fp32", "cpu"):
        assert (x @ x).dtype == torch.float32
    with autocast("bf16", "cpu"):
        assert (x @ x).dtype == torch.bfloat16
    assert (x @ x).dtype == torch.float32  # and only inside


@pytest.fixture(scope="module")
def trained(train_small_convnet):
    start = create_model("convnet", (1, 8, 8), 10, generator=torch.Generator().manual_seed(0))
    return {"start": start, "fp32": train_small_convnet(precision="fp32"), "bf16": train_small_convnet(precision="bf16"),
            "bf16 again": train_small_convnet(precision="bf16")}


def test_bf16_training_is_deterministic_and_keeps_fp32_weights(trained):
    for a, b in zip(trained["bf16"].parameters(), trained["bf16 again"].parameters(), strict=True):
        assert a.dtype == torch.float32 and torch.equal(a, b)


def test_bf16_training_stays_near_the_fp32_trajectory(trained):
    # bfloat16 keeps 8 bits of mantissa: the same shuffles, augmentation and updates, so the
    # two runs end far closer to each other than to where they started (measured: 0.21)
    flat = {k: parameters_to_vector(m.parameters()).detach() for k, m in trained.items()}
    apart = float((flat["bf16"] - flat["fp32"]).norm() / (flat["fp32"] - flat["start"]).norm())
    assert 0 < apart < 0.5


def test_bf16_scores_like_fp32(trained, digits_test):
    model = trained["fp32"]
    fp32, bf16 = score_model(model, digits_test), score_model(model, digits_test, precision="bf16")
    assert abs(fp32.accuracy - bf16.accuracy) <= 1.0
    assert bf16.per_class_loss.dtype == torch.float64
    torch.testing.assert_close(fp32.per_class_loss, bf16.per_class_loss, rtol=0.05, atol=0.02)


def test_evaluation_records_its_precision(digits_train, digits_test):
    images, labels = digits_train.images[:20], digits_train.labels[:20]
    report = evaluate_set(images, labels, digits_test, models=["convnet_tiny"], runs=1, progress=False,
                          settings=TrainSettings(epochs=2, precision="bf16"))
    assert report.protocol["precision"] == "bf16"


def test_api_evaluate_rejects_an_unknown_precision_before_any_work(tmp_path):
    with pytest.raises(ConfigError, match="must be one of fp32, bf16; got 'half'"):
        evaluate(tmp_path / "missing.safetensors", precision="half")
