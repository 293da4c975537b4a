import pytest
import torch

from securedd.data.zca import ZCAWhitening
from securedd.errors import ArtifactError, DataError


def _pixels(n=300, shape=(1, 4, 4), seed=0):
    gen = torch.Generator().manual_seed(seed)
    mix = torch.randn(16, 16, generator=gen, dtype=torch.float64)
    return (torch.rand(n, 16, generator=gen, dtype=torch.float64) @ mix).reshape(n, *shape)


def test_matches_the_kornia_style_formula():
    x = _pixels()
    zca = ZCAWhitening.fit(x, regularization=0.1)
    flat = x.reshape(len(x), -1)
    centred = flat - flat.mean(0)
    u, s, _ = torch.linalg.svd(centred.T @ centred / (len(x) - 1))
    w = u @ torch.diag((s + 0.1).rsqrt()) @ u.T
    expected = (centred @ w).reshape(x.shape)
    assert torch.allclose(zca.transform(x.float()).double(), expected, atol=1e-4)


def test_whitened_covariance_is_shrunk_identity_and_inverse_round_trips():
    x = _pixels().float()
    zca = ZCAWhitening.fit(x, regularization=1e-6)
    z = zca.transform(x).reshape(len(x), -1).double()
    cov = z.T @ z / (len(x) - 1)
    assert torch.allclose(cov, torch.eye(16, dtype=torch.float64), atol=1e-2)
    assert torch.allclose(zca.inverse(zca.transform(x)), x, atol=1e-3)


def test_tensors_round_trip_and_fingerprint(digits_train):
    zca = ZCAWhitening.fit_data(digits_train)
    again = ZCAWhitening.from_tensors(zca.to_tensors())
    assert again is not None and again.fingerprint() == zca.fingerprint() and again.regularization == 0.1
    assert ZCAWhitening.fit_data(digits_train).fingerprint() == zca.fingerprint()  # deterministic
    assert ZCAWhitening.from_tensors({"images": torch.zeros(1)}) is None
    white = zca.apply(digits_train)
    assert white.images.shape == digits_train.images.shape and torch.equal(white.labels, digits_train.labels)
    # the normalised images are undone to pixels first: the same as fitting on pixels
    pixels = ZCAWhitening.pixels(digits_train.images, digits_train.spec)
    assert torch.allclose(pixels.min(), torch.tensor(0.0), atol=1e-5) and pixels.max() <= 1 + 1e-5


def test_errors_name_the_problem(digits_train):
    with pytest.raises(DataError, match="at least 2 images"):
        ZCAWhitening.fit(torch.zeros(1, 1, 4, 4))
    with pytest.raises(DataError, match="regularization must be > 0"):
        ZCAWhitening.fit(_pixels(), regularization=0)
    partial = {k: v for k, v in ZCAWhitening.fit(_pixels()).to_tensors().items() if k != "zca_matrix"}
    with pytest.raises(ArtifactError, match="missing zca_matrix"):
        ZCAWhitening.from_tensors(partial)
    with pytest.raises(DataError, match="16-value images"):
        ZCAWhitening.fit(_pixels()).apply(digits_train)


def test_gradcheck_float64():
    zca = ZCAWhitening.fit(_pixels())
    zca64 = ZCAWhitening(zca.mean.double(), zca.matrix.double())
    x = torch.randn(3, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(zca64.transform, (x,))
