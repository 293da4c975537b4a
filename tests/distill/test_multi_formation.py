"""IDC (multi-formation): decode/encode, the matching loss, the method on the shared loop, the artifact."""

import tomllib
from pathlib import Path

import pytest
import torch

from securedd import api
from securedd.artifacts import load_artifact
from securedd.cli.main import main
from securedd.config import RunConfig, apply_overrides
from securedd.distill import run_method
from securedd.distill.gradient_matching import gradient_distance
from securedd.distill.multi_formation import (
    IDCMethod,
    decode,
    decode_stored,
    encode,
    matched_parameters,
    matching_loss,
)
from securedd.errors import ConfigError, UnknownNameError
from securedd.models import create_model

PRESETS = Path(__file__).parents[2] / "src" / "securedd" / "presets" / "idc.toml"


def _cfg(*extra: str):
    return apply_overrides(RunConfig(), ["method.name=idc", "method.ipc=1", "method.iterations=2", "model=convnet_tiny",
                                         "method.inner_loop=1", "method.batch_real=8", "method.net_data=16", *extra])


# --- decode / encode -----------------------------------------------------------------------

def test_decode_splits_into_tiles_and_upsamples_bilinearly():
    image = torch.arange(16.0).view(1, 1, 4, 4)  # tiles [[0,1],[4,5]], [[2,3],[6,7]], [[8,9],[12,13]], [[10,11],[14,15]]
    images, labels = decode(image, torch.tensor([7]), factor=2)
    assert images.shape == (4, 1, 4, 4) and labels.tolist() == [7, 7, 7, 7]
    # 2 -> 4 bilinear (half-pixel centres, edges clamped) weighs the second row/column by w:
    w = torch.tensor([0.0, 0.25, 0.75, 1.0])
    ramp = 4 * w.view(4, 1) + w.view(1, 4)  # a tile [[a, a+1], [a+4, a+5]] decodes to a + ramp
    for tile, corner in enumerate([0.0, 2.0, 8.0, 10.0]):
        assert torch.allclose(images[tile, 0], corner + ramp)


def test_decode_of_constant_quadrants_and_label_layout():
    quadrants = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).repeat_interleave(3, 0).repeat_interleave(3, 1)  # 6x6
    stored = torch.stack([quadrants, -quadrants]).unsqueeze(1)  # (2, 1, 6, 6)
    images, labels = decode(stored, torch.tensor([3, 5]), factor=2)
    assert labels.tolist() == [3, 3, 3, 3, 5, 5, 5, 5]  # class-major stays class-major
    expected = torch.tensor([1.0, 2.0, 3.0, 4.0, -1.0, -2.0, -3.0, -4.0]).view(8, 1, 1, 1).expand(8, 1, 6, 6)
    assert torch.allclose(images, expected)
    soft = torch.eye(3)[:2]
    assert decode(stored, soft, 2)[1].shape == (8, 3)
    assert decode(stored, torch.tensor([3, 5]), 1)[0] is stored
    assert decode(torch.zeros(2, 3, 5, 5), torch.zeros(2), 2)[0].shape == (8, 3, 5, 5)  # 5 does not divide: padded
    with pytest.raises(ConfigError, match="at least 1"):
        decode(stored, torch.tensor([3, 5]), 0)


def test_encode_places_downsampled_images_where_decode_reads_them():
    constants = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]).view(8, 1, 1, 1).expand(8, 2, 8, 8)
    stored = encode(constants.contiguous(), 2)
    assert stored.shape == (2, 2, 8, 8)
    assert torch.allclose(decode(stored, torch.zeros(2), 2)[0], constants)
    assert encode(torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 2, 2).contiguous(), 2)[0, 0].tolist() == [[0, 1], [2, 3]]


def test_decode_stored_follows_metadata():
    x, y = torch.randn(2, 1, 4, 4), torch.tensor([0, 1])
    assert decode_stored(x, y, None)[0] is x
    assert decode_stored(x, y, {"kind": "tiles", "factor": 2})[0].shape == (8, 1, 4, 4)
    with pytest.raises(UnknownNameError, match="unknown decoder"):
        decode_stored(x, y, {"kind": "spirals"})


# --- the matching loss -----------------------------------------------------------------------

def test_l1_distance_on_a_hand_case():
    g = [torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([5.0, 5.0])]
    other = [torch.tensor([[-1.0, 0.0], [0.5, -2.0]]), torch.tensor([1.0, -3.0])]
    assert float(gradient_distance(g, other, "l1")) == pytest.approx(2 + 0.5 + 4 + 4 + 8)
    assert float(gradient_distance(g, g, "l1")) == 0.0


def test_gradcheck_float64_of_the_matching_loss_wrt_one_image_per_class():
    gen = torch.Generator().manual_seed(0)
    net = create_model("convnet_tiny", (1, 8, 8), 3, generator=gen).double()
    params = matched_parameters(net)
    real = [torch.randn(3, 1, 8, 8, generator=gen, dtype=torch.float64) for _ in range(3)]
    syn = torch.randn(3, 1, 8, 8, generator=gen, dtype=torch.float64, requires_grad=True)

    def loss(s: torch.Tensor) -> torch.Tensor:
        decoded, _ = decode(s, torch.arange(3), 2)  # (12, 1, 8, 8): 4 per class
        return sum(matching_loss(net, params, real[c], decoded[4 * c : 4 * c + 4], c, "mse") for c in range(3))

    assert torch.autograd.gradcheck(loss, (syn,), atol=1e-6)


def test_only_convolution_weights_are_matched_by_default():
    net = create_model("convnet_tiny", (1, 8, 8), 10, generator=torch.Generator().manual_seed(0))
    assert all(p.dim() == 4 for p in matched_parameters(net))
    assert len(matched_parameters(net, bias=True, fc=True)) == len(list(net.parameters()))
    with pytest.raises(ConfigError, match="no convolution weights"):
        matched_parameters(create_model("mlp", (1, 8, 8), 10, generator=torch.Generator().manual_seed(0)))


# --- the method on the shared loop ---------------------------------------------------------

def test_two_iterations_change_the_set_with_finite_loss(digits_train):
    start = run_method(_cfg("method.iterations=0"), digits_train, progress=False).synthetic.images
    result = run_method(_cfg(), digits_train, progress=False)
    assert len(result.history) == 2 and all(torch.isfinite(torch.tensor(result.history)))
    assert not torch.equal(start, result.synthetic.images)
    assert result.synthetic.images.shape == (10, 1, 8, 8) and result.synthetic.labels.tolist() == list(range(10))
    assert result.params["factor"] == 2 and result.params["init"] == "real"


def test_same_seed_same_artifact_bytes(digits_train, tmp_path: Path):
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    for out in (a, b):
        api.distill(_cfg(), out=out, real=digits_train, progress=False)
    assert a.read_bytes() == b.read_bytes()


def test_resume_after_a_checkpoint_gives_an_identical_artifact(digits_train, tmp_path: Path):
    cfg = _cfg("method.iterations=3", "method.checkpoint_every=1")
    full, resumed = tmp_path / "full.safetensors", tmp_path / "resumed.safetensors"
    api.distill(cfg, out=full, real=digits_train, progress=False)

    class Stop(Exception):
        pass

    def interrupt(it, loss, syn):
        if it == 1:
            raise Stop

    ckpt = Path(str(resumed) + ".ckpt")
    with pytest.raises(Stop):
        run_method(cfg, digits_train, progress=False, checkpoint=ckpt, callbacks=(interrupt,))
    assert ckpt.is_file() and not resumed.exists()
    api.distill(cfg, out=resumed, real=digits_train, progress=False, resume=True)
    assert resumed.read_bytes() == full.read_bytes() and not ckpt.exists()


def test_artifact_records_stored_and_decoded_ipc(digits_train, tmp_path: Path):
    art = api.distill(_cfg("method.iterations=0", "method.ipc=3"), out=tmp_path / "idc.safetensors",
                      real=digits_train, progress=False)
    loaded = load_artifact(tmp_path / "idc.safetensors")
    for a in (art, loaded):
        assert a.ipc == 3 and a.images.shape == (30, 1, 8, 8) and a.decoded_ipc == 12
        assert a.decoder == {"kind": "tiles", "factor": 2, "images_per_stored": 4, "stored_ipc": 3,
                             "decoded_ipc": 12, "decoded_images": 120}
        assert a.ipc_accounting() == {"stored_ipc": 3, "decoded_ipc": 12, "factor": 2,
                                      "summary": "IPC 3 stored (decodes to 12 per class, factor 2)"}
        assert a.metadata["evaluation"] == {"cutmix_prob": 0.5, "cutmix_beta": 1.0,
                                            "dsa_strategy": "color_crop_scale_rotate"}  # digits' strategy, no cutout
    low = (0 - art.spec.mean[0]) / art.spec.std[0]
    assert float(art.images.min()) >= low - 1e-6  # initial images are valid pixels


def test_show_states_stored_and_decoded_ipc(digits_train, tmp_path: Path, capsys):
    path = tmp_path / "idc.safetensors"
    api.distill(_cfg("method.iterations=0", "method.ipc=3"), out=path, real=digits_train, progress=False)
    assert main(["show", str(path), "--out", str(tmp_path / "grid.png")]) == 0
    assert "idc, IPC 3 stored (decodes to 12 per class, factor 2)" in capsys.readouterr().out


def test_idc_settings_are_validated(digits_train):
    with pytest.raises(ConfigError, match="method.distance must be one of mse, l1"):
        run_method(_cfg("method.distance=cos"), digits_train, progress=False)
    with pytest.raises(ConfigError, match="factor must be at least 1"):
        run_method(_cfg("method.factor=0"), digits_train, progress=False)
    with pytest.raises(ConfigError, match="CutMix probability"):
        run_method(_cfg("method.eval_cutmix=2.0"), digits_train, progress=False)


def test_presets_hold_valid_params_for_every_dataset_and_ipc():
    tables = tomllib.loads(PRESETS.read_text())
    assert sorted(tables) == ["cifar10", "cifar100", "fashionmnist", "mnist", "svhn"]
    for dataset, per_ipc in tables.items():
        assert sorted(per_ipc) == ["ipc1", "ipc10", "ipc50"], dataset
        for values in per_ipc.values():
            params = {k: v for k, v in values.items() if k != "iterations"}
            parsed = IDCMethod.parse_params(params)
            assert parsed.factor == 2 and values["iterations"] == 2000
            assert parsed.distance == ("l1" if "mnist" in dataset else "mse")
    assert tables["cifar10"]["ipc10"]["lr_img"] == pytest.approx(5e-3)
    assert tables["mnist"]["ipc10"]["eval_cutmix"] == 0.0  # the reference evaluates MNIST IDC without CutMix
