"""MTT and TESLA: the method on the shared loop, the unrolled gradients, memory, ZCA, evaluation."""

from pathlib import Path

import pytest
import torch

from securedd.api import distill, evaluate
from securedd.config import RunConfig, apply_overrides
from securedd.data.augment import DSA
from securedd.data.zca import ZCAWhitening
from securedd.distill import run_method
from securedd.distill.experts import ExpertSet, train_experts
from securedd.distill.unroll import SavedTensorMeter, Student, plan_steps, tesla_loss, unrolled_loss
from securedd.errors import ConfigError, MismatchError
from securedd.evaluation import TrainSettings, evaluate_set
from securedd.models import create_model
from securedd.models.functional import flat_params


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny unrolls gain nothing from threads, and on a busy 2-core machine two threads
    spinning against other work make them 100x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def small(digits_train):
    idx = torch.cat([torch.nonzero(digits_train.labels == c).flatten()[:20] for c in range(10)])
    return digits_train.subset(idx)


@pytest.fixture(scope="module")
def experts(small, tmp_path_factory) -> dict[bool, Path]:
    out = {}
    for zca in (False, True):
        path = tmp_path_factory.mktemp(f"experts_zca{zca}")
        train_experts(RunConfig(model="convnet_tiny"), path, num_experts=2, epochs=2, zca=zca, real=small,
                      progress=False)
        out[zca] = path
    return out


def _cfg(experts, *extra, zca=False):
    return apply_overrides(RunConfig(model="convnet_tiny"), [
        "method.name=mtt", "method.ipc=2", "method.iterations=2", f"method.experts='{experts[zca]}'",
        "method.syn_steps=4", "method.expert_epochs=1", "method.max_start_epoch=1", "method.batch_syn=10",
        "method.lr_img=100", "method.lr_lr=1e-8", f"method.zca={str(zca).lower()}", *extra])


def test_two_iterations_change_images_and_lr_with_finite_loss(small, experts):
    first = run_method(_cfg(experts, "method.iterations=0"), small, progress=False).synthetic
    result = run_method(_cfg(experts), small, progress=False)
    syn = result.synthetic
    assert len(result.history) == 2 and all(torch.isfinite(torch.tensor(result.history)))
    assert not torch.equal(first.images, syn.images) and syn.labels.bincount().tolist() == [2] * 10
    lr0, lr2 = float(first.lrs.detach()), float(syn.lrs.detach())
    assert lr0 == pytest.approx(0.01) and lr2 != lr0
    assert result.params["tesla"] is False and syn.extras == {}


def test_tesla_run_equals_plain_run(small, experts):
    plain = run_method(_cfg(experts), small, progress=False).synthetic
    tesla = run_method(_cfg(experts, "method.tesla=true"), small, progress=False).synthetic
    assert torch.allclose(plain.images, tesla.images, atol=1e-4) and torch.allclose(plain.lrs, tesla.lrs, rtol=1e-4)


def test_same_seed_same_artifact_bytes(small, experts, tmp_path: Path):
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    for path in (a, b):
        distill(_cfg(experts), out=path, real=small, progress=False)
    assert a.read_bytes() == b.read_bytes()


def test_resume_after_checkpoint_matches_uninterrupted_run(small, experts, tmp_path: Path):
    cfg = _cfg(experts, "method.iterations=4", "method.checkpoint_every=2")
    full = run_method(cfg, small, progress=False)

    class Stop(Exception):
        pass

    def interrupt(it, loss, syn):
        if it == 2:
            raise Stop

    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(Stop):
        run_method(cfg, small, progress=False, checkpoint=ckpt, callbacks=(interrupt,))
    resumed = run_method(cfg, small, progress=False, checkpoint=ckpt, resume=True)
    assert torch.equal(resumed.synthetic.images, full.synthetic.images)
    assert torch.equal(resumed.synthetic.lrs, full.synthetic.lrs) and resumed.history == full.history


def _problem(dsa: bool, n: int = 20):
    net = create_model("convnet_tiny", (1, 8, 8), 10, generator=torch.Generator().manual_seed(0)).double()
    student = Student(net, DSA("color_crop_cutout_scale_rotate") if dsa else None)
    gen = torch.Generator().manual_seed(1)
    images = torch.randn(n, 1, 8, 8, dtype=torch.float64, generator=gen)
    labels = torch.arange(10).repeat_interleave(n // 10)
    start = flat_params(net)
    target = start + 0.05 * torch.randn(start.shape, generator=gen, dtype=torch.float64)
    return student, images, labels, start, target


def _gradients(fn, student, images, labels, start, target, steps):
    x = images.clone().requires_grad_(True)
    lr = torch.tensor([0.05], dtype=torch.float64, requires_grad=True)
    with SavedTensorMeter() as meter:
        loss = fn(student, start, target, x, labels, lr, steps)
        loss.backward()
    return loss.detach(), x.grad, lr.grad, meter.peak


def test_tesla_gradients_equal_the_unrolled_ones_float64():
    student, images, labels, start, target = _problem(dsa=True)
    steps = plan_steps(len(labels), 6, 7, torch.Generator().manual_seed(5), student.dsa, (8, 8))
    loss_p, gx_p, glr_p, _ = _gradients(unrolled_loss, student, images, labels, start, target, steps)
    loss_t, gx_t, glr_t, _ = _gradients(tesla_loss, student, images, labels, start, target, steps)
    assert torch.allclose(loss_p, loss_t, rtol=1e-12)
    assert float((gx_t - gx_p).norm() / gx_p.norm()) < 1e-4 and gx_p.abs().sum() > 0
    assert float((glr_t - glr_p).abs() / glr_p.abs()) < 1e-4


def test_tesla_memory_stays_flat_while_the_unroll_grows():
    student, images, labels, start, target = _problem(dsa=False, n=10)
    peaks = {}
    for n_steps in (10, 40):
        steps = plan_steps(len(labels), n_steps, 5, torch.Generator().manual_seed(5))
        for name, fn in (("plain", unrolled_loss), ("tesla", tesla_loss)):
            peaks[name, n_steps] = _gradients(fn, student, images, labels, start, target, steps)[3]
    assert peaks["plain", 40] / peaks["plain", 10] > 3.5
    assert peaks["tesla", 40] / peaks["tesla", 10] < 1.1
    assert peaks["tesla", 10] < peaks["plain", 10]


def test_zca_is_saved_and_evaluation_whitens_the_test_split(small, experts, digits_test, tmp_path: Path):
    art = distill(_cfg(experts, zca=True), out=tmp_path / "z.safetensors", real=small, progress=False)
    zca = ZCAWhitening.from_tensors(art.extras)
    stored = ExpertSet.open(experts[True]).zca()
    assert zca is not None and stored is not None and zca.fingerprint() == stored.fingerprint()
    report = evaluate(tmp_path / "z.safetensors", models=["convnet_tiny"], runs=1, epochs=2, dsa=False,
                      test=digits_test, progress=False)
    by_hand = evaluate_set(art.images, art.labels, zca.apply(digits_test), models=["convnet_tiny"], runs=1,
                           settings=TrainSettings(epochs=2, lr=float(art.lrs)), progress=False)
    assert report.archs[0].accuracies == by_hand.archs[0].accuracies


def test_evaluation_trains_with_the_learned_lr(small, experts, digits_test):
    art = distill(_cfg(experts), real=small, progress=False)
    assert art.lrs is not None and art.lrs.shape == (1,) and float(art.lrs) != pytest.approx(0.01)
    report = evaluate(art, models=["convnet_tiny"], runs=1, epochs=1, dsa=False, test=digits_test, progress=False)
    assert report.protocol["lr"] == float(art.lrs) and report.protocol["replayed_steps"] is None
    images, labels = art.images[:10], art.labels[:10]
    replay = evaluate_set(images, labels, digits_test, models=["convnet_tiny"], runs=1, lrs=torch.tensor([0.5]),
                          steps=1, progress=False)
    assert replay.protocol["replayed_steps"] == 1 and replay.protocol["lr"] == 0.01  # a DD schedule is replayed


def test_clear_errors_for_missing_or_mismatched_experts(small, experts, tmp_path: Path):
    with pytest.raises(ConfigError, match="method.experts is not set: train expert trajectories first with `securedd experts"):
        run_method(_cfg(experts, "method.experts=''"), small, progress=False)
    with pytest.raises(ConfigError, match="no expert trajectories in .*securedd experts --dataset digits"):
        run_method(_cfg(experts, f"method.experts='{tmp_path}'"), small, progress=False)
    with pytest.raises(MismatchError, match="'convnet_tiny' networks but this run uses 'mlp'"):
        run_method(apply_overrides(_cfg(experts), ["model=mlp"]), small, progress=False)
    with pytest.raises(MismatchError, match="trained without ZCA whitening but method.zca=true"):
        run_method(_cfg(experts, f"method.experts='{experts[False]}'", zca=True), small, progress=False)
    with pytest.raises(ConfigError, match=r"exceeds the experts' 2 epochs.*--epochs 4"):
        run_method(_cfg(experts, "method.max_start_epoch=2", "method.expert_epochs=2"), small, progress=False)


def test_presets_cover_every_dataset_and_ipc_with_valid_settings():
    import tomllib

    from securedd.distill.trajectory_matching import MTTMethod

    presets = tomllib.loads((Path(__file__).parents[2] / "src" / "securedd" / "presets" / "mtt.toml").read_text())
    assert set(presets) == {"mnist", "fashionmnist", "svhn", "cifar10", "cifar100"}
    for name, tables in presets.items():
        assert set(tables) == {"ipc1", "ipc10", "ipc50"}, name
        for values in tables.values():
            params = MTTMethod.parse_params(values)
            assert params.max_start_epoch + params.expert_epochs <= 50  # fits the standard 50-epoch experts
    assert presets["cifar10"]["ipc1"] == {"syn_steps": 50, "expert_epochs": 2, "max_start_epoch": 2, "lr_img": 100.0,
                                          "lr_lr": 1e-7, "lr_teacher": 0.01, "batch_syn": 0, "zca": True}


def test_a_step_size_driven_below_zero_stops_with_advice(small, experts, digits_test):
    with pytest.raises(ConfigError, match=r"learned step size became .* lower it"):
        run_method(_cfg(experts, "method.lr_lr=10", "method.iterations=3"), small, progress=False)
    with pytest.raises(MismatchError, match="learned learning rate is negative"):
        evaluate_set(torch.zeros(10, 1, 8, 8), torch.arange(10), digits_test, lrs=torch.tensor([-0.1]), progress=False)
