import pytest
import torch

from securedd.data import load_dataset
from securedd.errors import MismatchError
from securedd.evaluate import TrainSettings, class_variance, evaluate_set, normalized_per_class
from securedd.evaluate.train_eval import inference_batch, replay_steps, score_model, train_model


def _subset(data, per_class):
    idx = torch.cat([torch.nonzero(data.labels == c).flatten()[:per_class] for c in range(10)])
    return data.images[idx], data.labels[idx]


def test_training_on_real_images_beats_chance_and_reports_per_class(digits_train, digits_test):
    images, labels = _subset(digits_train, 5)
    report = evaluate_set(images, labels, digits_test, models=["convnet_tiny"], runs=2,
                          settings=TrainSettings(epochs=60), progress=False)
    arch = report.archs[0]
    assert len(arch.accuracies) == 2 and arch.mean > 50
    assert arch.per_class_accuracy.shape == (10,) and arch.per_class_loss.shape == (10,)
    d = report.to_dict()["models"][0]
    assert d["fairness_accuracy_variance"] >= 0 and d["seconds_per_model"] > 0
    assert "convnet_tiny" in report.to_markdown()


def test_evaluation_is_deterministic_per_seed(digits_train, digits_test):
    images, labels = _subset(digits_train, 2)
    kw = dict(models=["convnet_tiny"], runs=1, settings=TrainSettings(epochs=5, dsa_strategy="color_crop"),
              progress=False)
    a = evaluate_set(images, labels, digits_test, seed=3, **kw).archs[0].accuracies
    b = evaluate_set(images, labels, digits_test, seed=3, **kw).archs[0].accuracies
    assert a == b


def test_soft_labels_and_learned_lr_are_used(digits_train, digits_test):
    from securedd.evaluate.train_eval import soft_label_loss

    images, labels = _subset(digits_train, 5)
    soft = torch.nn.functional.one_hot(labels, 10).float()
    logits = torch.randn(len(labels), 10)
    assert torch.allclose(soft_label_loss(logits, soft), soft_label_loss(logits, labels), atol=1e-6)  # one-hot soft == hard
    smooth = 0.9 * soft + 0.01
    softr = evaluate_set(images, smooth, digits_test, models=["convnet_tiny"], runs=1,
                         settings=TrainSettings(epochs=60), progress=False)
    assert softr.archs[0].mean > 50  # soft targets train the model
    lr = evaluate_set(images, labels, digits_test, models=["convnet_tiny"], runs=1, lrs=torch.tensor([0.0]),
                      settings=TrainSettings(epochs=20), progress=False)
    assert lr.protocol["lr"] == 0.0 and lr.archs[0].mean < 30  # lr 0: the model never learns


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


def test_shape_mismatch_is_refused(digits_test):
    with pytest.raises(MismatchError, match="test images are"):
        evaluate_set(torch.zeros(10, 3, 8, 8), torch.arange(10), digits_test, progress=False)


def test_test_model_counts_per_class(digits_test):
    class Oracle(torch.nn.Module):
        def forward(self, x):
            return torch.zeros(x.shape[0], 10)

    score = score_model(Oracle(), digits_test)
    assert score.per_class_accuracy[0] == 100 and score.per_class_accuracy[1:].sum() == 0


def test_scores_do_not_depend_on_the_inference_batch(digits_test):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    assert inference_batch(digits_test.images) == 64  # a CPU tensor: cache-sized batches
    whole, small = score_model(model, digits_test, batch_size=4096), score_model(model, digits_test)
    assert whole.accuracy == small.accuracy
    torch.testing.assert_close(whole.per_class_loss, small.per_class_loss)


def test_fairness_helpers():
    assert class_variance(torch.tensor([50.0, 50.0])) == 0
    assert class_variance(torch.tensor([40.0, 60.0])) == 100
    assert torch.allclose(normalized_per_class(torch.tensor([45.0]), torch.tensor([90.0])), torch.tensor([0.5]).double())


@pytest.mark.slow
def test_mnist_test_split_loads_with_artifact_spec(real_data_root):
    train = load_dataset("mnist", root=real_data_root)
    test = load_dataset("mnist", "test", root=real_data_root, spec=train.spec)
    assert len(test) == 10000 and test.spec == train.spec


@pytest.mark.parametrize("soft", [False, True])
def test_training_in_pieces_matches_whole_batches(digits_train, soft):
    from securedd.evaluate.train_eval import train_model
    from securedd.models import create_model

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
