from pathlib import Path

import torch

from securedd.artifacts import load_artifact, save_artifact
from securedd.data import dataset_spec
from securedd.data.zca import ZCAWhitening
from securedd.visualize import display_pixels, save_grid

SPEC = dataset_spec("digits")


def _pixels() -> torch.Tensor:
    return torch.rand(20, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 0.8 + 0.1


def test_grid_shows_normalised_sets_as_their_pixels(tmp_path: Path):
    pixels = _pixels()
    art = save_artifact(tmp_path / "a.safetensors", SPEC.normalize(pixels), torch.arange(10).repeat_interleave(2),
                        spec=SPEC, method="random", ipc=2, seed=0)
    assert torch.allclose(display_pixels(load_artifact(art.path)), pixels, atol=1e-5)
    png = save_grid(art, tmp_path / "a.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_grid_undoes_zca_whitening(tmp_path: Path):
    pixels = _pixels()
    zca = ZCAWhitening.fit(torch.rand(200, 1, 8, 8, generator=torch.Generator().manual_seed(1)))
    art = save_artifact(tmp_path / "z.safetensors", zca.transform(pixels), torch.arange(10).repeat_interleave(2),
                        spec=SPEC, method="mtt", ipc=2, seed=0, extras=zca.to_tensors())
    shown = display_pixels(load_artifact(art.path))
    assert torch.allclose(shown, pixels, atol=1e-4)
    assert not torch.allclose(SPEC.denormalize(art.images).clamp(0, 1), pixels, atol=1e-2)  # what the grid showed before
