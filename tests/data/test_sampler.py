import pytest
import torch

from securedd.data import ClassBalancedSampler, check_ipc
from securedd.errors import MismatchError
from securedd.rng import make_generator


def test_balanced_batches_hold_each_class_equally(digits_train):
    s = ClassBalancedSampler(digits_train, make_generator(0, "s"))
    images, labels = s.balanced(7)
    assert images.shape == (70, 1, 8, 8) and labels.bincount().tolist() == [7] * 10


def test_samples_are_of_the_class_without_repeats(digits_train):
    s = ClassBalancedSampler(digits_train, make_generator(0, "s"))
    idx = s.indices(3, 50)
    assert len(set(idx.tolist())) == 50 and (digits_train.labels[idx] == 3).all()


def test_same_generator_state_same_draws(digits_train):
    a = ClassBalancedSampler(digits_train, make_generator(5, "s")).indices(2, 10)
    b = ClassBalancedSampler(digits_train, make_generator(5, "s")).indices(2, 10)
    c = ClassBalancedSampler(digits_train, make_generator(6, "s")).indices(2, 10)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_ipc_larger_than_smallest_class_is_refused(digits_train):
    smallest = int(digits_train.class_counts().min())
    check_ipc(digits_train, smallest)
    with pytest.raises(MismatchError, match=f"use --ipc {smallest} or less"):
        check_ipc(digits_train, smallest + 1)
