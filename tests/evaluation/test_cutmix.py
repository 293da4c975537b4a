"""CutMix in evaluation training, and evaluating a multi-formation (IDC) artifact."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from securedd import api
from securedd.config import RunConfig, apply_overrides
from securedd.data.mix import CutMix
from securedd.errors import ConfigError
from securedd.evaluation import protocols
from securedd.models import create_model
from securedd.training import TrainSettings, soft_label_loss, train_model


def _constant_batch(n: int = 6, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Image ``i`` is filled with the value ``i``; its label is ``i``."""
    return torch.arange(float(n)).view(n, 1, 1, 1).expand(n, 2, size, size).contiguous(), torch.arange(n)


def test_cutmix_pastes_a_partner_box_and_mixes_labels_by_area():
    images, labels = _constant_batch()
    for seed in range(5):
        out = CutMix(prob=1.0)(images, labels, torch.Generator().manual_seed(seed))
        top, left, bottom, right = out.box
        area = (bottom - top) * (right - left)
        assert out.ratio == pytest.approx(1 - area / 64)
        inside = torch.zeros(8, 8, dtype=torch.bool)
        inside[top:bottom, left:right] = True
        for i in range(6):
            partner = int(out.partner_labels[i])
            assert torch.all(out.images[i][:, inside] == partner)  # the box shows the partner image
            assert torch.all(out.images[i][:, ~inside] == i)  # the rest is the image itself
        assert torch.equal(images, _constant_batch()[0])  # the input is not modified
        assert sorted(out.partner_labels.tolist()) == list(range(6))  # partners are a permutation
    logits = torch.randn(6, 6)
    hand = out.ratio * F.cross_entropy(logits, labels) + (1 - out.ratio) * F.cross_entropy(logits, out.partner_labels)
    assert torch.allclose(out.loss(logits, F.cross_entropy), hand)
    soft = F.one_hot(labels, 6).float()
    mixed_soft = CutMix(prob=1.0)(images, soft, torch.Generator().manual_seed(4))
    assert torch.allclose(mixed_soft.loss(logits, soft_label_loss), hand)  # soft labels mix the same way


def test_cutmix_probability_and_determinism():
    images, labels = _constant_batch()
    off = CutMix(prob=0.0)(images, labels, torch.Generator().manual_seed(0))
    assert off.images is images and off.ratio == 1.0
    a = CutMix(prob=1.0)(images, labels, torch.Generator().manual_seed(3))
    b = CutMix(prob=1.0)(images, labels, torch.Generator().manual_seed(3))
    assert torch.equal(a.images, b.images) and a.box == b.box
    mixed = sum(CutMix(prob=0.5)(images, labels, torch.Generator().manual_seed(s)).ratio < 1 for s in range(40))
    assert 8 < mixed < 32
    with pytest.raises(ConfigError, match="probability"):
        CutMix(prob=1.5)
    with pytest.raises(ConfigError, match="beta"):
        CutMix(beta=0.0)


def test_cutmix_changes_evaluation_training(digits_train):
    images, labels = digits_train.images[:40], digits_train.labels[:40]

    def trained(settings: TrainSettings) -> list[torch.Tensor]:
        model = create_model("convnet_tiny", (1, 8, 8), 10, generator=torch.Generator().manual_seed(0))
        train_model(model, images, labels, settings, torch.Generator().manual_seed(1))
        return [p.detach() for p in model.parameters()]

    plain, again = trained(TrainSettings(epochs=2, batch_size=16)), trained(TrainSettings(epochs=2, batch_size=16))
    mixed = trained(TrainSettings(epochs=2, batch_size=16, cutmix_prob=1.0))
    assert all(torch.equal(a, b) for a, b in zip(plain, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(plain, mixed, strict=True))


def test_evaluate_trains_on_the_decoded_images_of_an_idc_artifact(digits_train, digits_test, tmp_path: Path,
                                                                monkeypatch):
    cfg = apply_overrides(RunConfig(), ["method.name=idc", "method.ipc=1", "method.iterations=0",
                                        "model=convnet_tiny"])
    art = api.distill(cfg, out=tmp_path / "idc.safetensors", real=digits_train, progress=False)
    seen = {}
    real_evaluate_set = protocols.evaluate_set

    def spy(images, labels, test, **kw):
        seen.update(images=images, labels=labels, settings=kw["settings"])
        return real_evaluate_set(images, labels, test, **kw)

    monkeypatch.setattr(protocols, "evaluate_set", spy)
    report = api.evaluate(art, models=["convnet_tiny"], runs=1, epochs=2, test=digits_test, progress=False)
    assert seen["images"].shape == (40, 1, 8, 8) and seen["labels"].bincount().tolist() == [4] * 10
    assert seen["settings"].cutmix_prob == 0.5 and seen["settings"].dsa_strategy == "color_crop_scale_rotate"
    assert report.protocol["cutmix_prob"] == 0.5
    assert report.to_markdown().startswith("IPC 1 stored (decodes to 4 per class, factor 2)")
    assert report.to_dict()["set"]["decoded_ipc"] == 4
    api.evaluate(art, models=["convnet_tiny"], runs=1, epochs=1, cutmix=0.0, test=digits_test, progress=False)
    assert seen["settings"].cutmix_prob == 0.0  # an explicit setting wins over the artifact's


def test_other_artifacts_are_evaluated_as_before(digits_train, digits_test, monkeypatch):
    cfg = apply_overrides(RunConfig(), ["method.name=random", "method.ipc=2"])
    art = api.distill(cfg, real=digits_train, progress=False)
    assert art.decoder is None and "decoder" not in art.metadata and "evaluation" not in art.metadata
    report = api.evaluate(art, models=["convnet_tiny"], runs=1, epochs=1, test=digits_test, progress=False)
    assert report.protocol["cutmix_prob"] == 0.0 and report.set_info["summary"] == "IPC 2"
