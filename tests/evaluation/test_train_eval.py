import pytest
import torch

from securedd.data import load_dataset
from securedd.errors import MismatchError
from securedd.evaluation import TrainSettings, class_variance, evaluate_set, normalized_per_class


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
    from securedd.training import soft_label_loss

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


def test_shape_mismatch_is_refused(digits_test):
    with pytest.raises(MismatchError, match="test images are"):
        evaluate_set(torch.zeros(10, 3, 8, 8), torch.arange(10), digits_test, progress=False)


def test_fairness_helpers():
    assert class_variance(torch.tensor([50.0, 50.0])) == 0
    assert class_variance(torch.tensor([40.0, 60.0])) == 100
    assert torch.allclose(normalized_per_class(torch.tensor([45.0]), torch.tensor([90.0])), torch.tensor([0.5]).double())


@pytest.mark.slow
def test_mnist_test_split_loads_with_artifact_spec(real_data_root):
    train = load_dataset("mnist", root=real_data_root)
    test = load_dataset("mnist", "test", root=real_data_root, spec=train.spec)
    assert len(test) == 10000 and test.spec == train.spec