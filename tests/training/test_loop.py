"""The training loops: SGD epochs (pieces, rate drop, per-epoch hook) and replayed learned steps."""

import dataclasses

import pytest
import torch

from securedd.errors import MismatchError
from securedd.models import create_model
from securedd.training import TrainSettings, replay_steps, soft_label_loss, train_model


def _subset(data, per_class):
    idx = torch.cat([torch.nonzero(data.labels == c).flatten()[:per_class] for c in range(10)])
    return data.images[idx], data.labels[idx]


def test_replayed_steps_apply_plain_gradient_steps(digits_train):
    images, labels = _subset(digits_train, 2)  # class-major, 2 per class
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    before = [p.detach().clone() for p in model.parameters()]
    replay_steps(model, images, labels, torch.zeros(4), steps=2, num_classes=10)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    replay_steps(model, images, labels, torch.full((4,), 0.1), steps=2, num_classes=10)
    assert not all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    with pytest.raises(MismatchError):
        replay_steps(model, images, labels, torch.ones(3), steps=3, num_classes=10)


def test_replayed_step_takes_one_image_of_every_class(digits_train):
    images, labels = _subset(digits_train, 2)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    expected = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    expected.load_state_dict(model.state_dict())
    replay_steps(model, images, labels, torch.tensor([0.1, 0.0]), steps=2, num_classes=10)
    first = torch.arange(10) * 2  # image 0 of every class
    loss = torch.nn.functional.cross_entropy(expected(images[first]), labels[first])
    grads = torch.autograd.grad(loss, list(expected.parameters()))
    for p, q, g in zip(model.parameters(), expected.parameters(), grads, strict=True):
        assert torch.allclose(p, q - 0.1 * g, atol=1e-6)


@pytest.mark.parametrize("soft", [False, True])
def test_training_in_pieces_matches_whole_batches(digits_train, soft):
    x, y = digits_train.images[:40], digits_train.labels[:40]
    labels = torch.nn.functional.one_hot(y, 10).float() * 0.9 + 0.01 if soft else y
    trained = []
    for chunk in (0, 7):
        model = create_model("convnet_tiny", digits_train.spec.shape, 10, generator=torch.Generator().manual_seed(1))
        settings = TrainSettings(epochs=4, batch_size=32, chunk=chunk)
        trained.append(train_model(model, x, labels, settings, torch.Generator().manual_seed(2)))
    for a, b in zip(trained[0].parameters(), trained[1].parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_one_epoch_trains_at_the_full_rate():
    """The rate drops at half-way; with one epoch there is no half-way, so it never drops."""
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    x, y = torch.randn(8, 1, 2, 2, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1] * 4)
    start = [p.detach().clone() for p in net.parameters()]
    grads = torch.autograd.grad(torch.nn.functional.cross_entropy(net(x), y), list(net.parameters()))
    train_model(net, x, y, TrainSettings(epochs=1, lr=0.01, momentum=0.0, weight_decay=0.0, batch_size=8, chunk=0),
                torch.Generator().manual_seed(0))
    for p, p0, g in zip(net.parameters(), start, grads, strict=True):
        assert torch.allclose(p, p0 - 0.01 * g, atol=1e-7)


def test_soft_labels_that_are_one_hot_give_the_hard_label_loss():
    labels = torch.arange(6) % 3
    logits = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    soft = torch.nn.functional.one_hot(labels, 3).float()
    assert torch.allclose(soft_label_loss(logits, soft), soft_label_loss(logits, labels), atol=1e-6)


def test_the_epoch_hook_sees_every_epoch_and_the_model_as_trained_so_far(digits_train):
    x, y = digits_train.images[:32], digits_train.labels[:32]
    settings = TrainSettings(epochs=3, batch_size=16)
    seen = []
    model = create_model("mlp", digits_train.spec.shape, 10, generator=torch.Generator().manual_seed(1))
    train_model(model, x, y, settings, torch.Generator().manual_seed(2),
                on_epoch=lambda epoch, net: seen.append((epoch, [p.detach().clone() for p in net.parameters()])))
    assert [e for e, _ in seen] == [0, 1, 2]
    assert all(torch.equal(a, b) for a, b in zip(seen[-1][1], model.parameters(), strict=True))
    plain = create_model("mlp", digits_train.spec.shape, 10, generator=torch.Generator().manual_seed(1))
    train_model(plain, x, y, settings, torch.Generator().manual_seed(2))  # the hook changes nothing
    assert all(torch.equal(a, b) for a, b in zip(plain.parameters(), model.parameters(), strict=True))


def test_without_the_rate_drop_the_second_half_trains_at_the_full_rate():
    x, y = torch.randn(8, 1, 2, 2, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1] * 4)
    base = TrainSettings(epochs=2, lr=0.1, momentum=0.0, weight_decay=0.0, batch_size=8, chunk=0)
    nets: dict[bool, list[torch.Tensor]] = {True: [], False: []}
    for drop, steps in nets.items():
        net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
        torch.nn.init.zeros_(net[1].weight), torch.nn.init.zeros_(net[1].bias)
        train_model(net, x, y, dataclasses.replace(base, lr_drop=drop), torch.Generator().manual_seed(0),
                    on_epoch=lambda epoch, m, steps=steps: steps.append(m[1].weight.detach().clone()))
    (drop_1, drop_2), (keep_1, keep_2) = nets[True], nets[False]
    assert torch.equal(drop_1, keep_1)  # the same first epoch
    assert torch.allclose((keep_2 - keep_1).norm(), 10 * (drop_2 - drop_1).norm(), rtol=1e-4)
