import pytest
import torch

from securedd.config import RunConfig, apply_overrides
from securedd.distill import list_methods, run_method
from securedd.distill.coreset import herding_select, kcenter_select

CORESETS = ["random", "herding", "kcenter"]


def _run(data, method, *extra):
    fast = [] if method == "random" else ["method.embed_steps=5"]
    cfg = apply_overrides(RunConfig(), [f"method.name={method}", "method.ipc=3", *fast, *extra])
    return run_method(cfg, data, progress=False)


def test_coresets_are_registered():
    assert set(CORESETS) <= set(list_methods())


@pytest.mark.parametrize("method", CORESETS)
def test_coresets_pick_distinct_real_images_of_each_class(digits_train, method):
    syn = _run(digits_train, method).synthetic
    assert syn.images.shape == (30, 1, 8, 8) and syn.labels.tolist() == [c for c in range(10) for _ in range(3)]
    rows = {tuple(r): int(y) for r, y in zip(digits_train.images.flatten(1).tolist(), digits_train.labels, strict=True)}
    picked = [tuple(r) for r in syn.images.flatten(1).tolist()]
    assert len(set(picked)) == 30
    assert all(rows[r] == int(y) for r, y in zip(picked, syn.labels, strict=True))  # real images of the right class


@pytest.mark.parametrize("method", CORESETS)
def test_coresets_are_deterministic_per_seed(digits_train, method):
    a = _run(digits_train, method).synthetic.images
    b = _run(digits_train, method).synthetic.images
    assert torch.equal(a, b)
    if method == "random":
        assert not torch.equal(a, _run(digits_train, method, "seed=1").synthetic.images)


def test_herding_tracks_the_mean_on_a_hand_case():
    feats = torch.tensor([[0.0, 0.0], [10.0, 0.0], [-10.0, 0.0], [1.0, 0.0], [0.0, 5.0]])
    # mean is (0.2, 1.0): the first pick is the closest to it; the running mean then stays near it
    chosen = herding_select(feats, 3).tolist()
    assert chosen[0] == 0 and len(set(chosen)) == 3
    running = feats[chosen].mean(0)
    assert torch.dist(running, feats.mean(0)) < torch.dist(feats[[1, 3, 4]].mean(0), feats.mean(0))


def test_kcenter_covers_the_extremes():
    feats = torch.tensor([[0.0], [0.1], [-0.1], [5.0], [-7.0]])
    # the mean is -0.4: start at -0.1, then the farthest (-7), then the farthest from both (5)
    assert kcenter_select(feats, 3).tolist() == [2, 4, 3]
