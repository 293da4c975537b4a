"""Scoring a trained model: per-class results, independent of the inference batch."""

import torch

from securedd.training import inference_batch, score_model


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
