"""The shared loop: parameters, iteration, checkpoints and resume, with a small learned method."""

import json
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from securedd.config import RunConfig, apply_overrides
from securedd.distill import METHODS, Method, SyntheticSet, run_method
from securedd.distill.synthetic import class_labels, init_images
from securedd.errors import ArtifactError, ConfigError, Diverged, Interrupted, MismatchError, UnknownNameError


@dataclass(frozen=True)
class MeanParams:
    lr: float = 0.5
    batch: int = 16


class MeanMatch(Method):
    """Moves each synthetic image towards the mean of a fresh random real batch of its class."""

    name = "test-meanmatch"
    Params = MeanParams
    default_iterations = 6

    def init_synthetic(self) -> SyntheticSet:
        ctx = self.ctx
        images = init_images("noise", ctx.spec, ctx.ipc, ctx.sampler, ctx.generator("init"))
        return SyntheticSet(images.requires_grad_(True), class_labels(ctx.spec.num_classes, ctx.ipc))

    def optimizer(self, syn: SyntheticSet) -> torch.optim.Optimizer:
        return torch.optim.SGD([syn.images], lr=self.params.lr, momentum=0.5)

    def losses(self, syn: SyntheticSet, iteration: int) -> Iterator[torch.Tensor]:
        real, labels = self.ctx.sampler.balanced(self.params.batch)
        noise = torch.rand((), generator=self.ctx.generator("jitter"))
        for _ in range(2):
            target = torch.stack([real[labels == c].mean(0) for c in range(self.ctx.spec.num_classes)])
            diff = syn.images - target.repeat_interleave(self.ctx.ipc, 0) * (1 + 0.1 * noise)
            yield (diff**2).sum(dim=(1, 2, 3)).mean()


@pytest.fixture(autouse=True)
def _registered():
    METHODS.register(MeanMatch.name)(MeanMatch)
    yield
    METHODS.unregister(MeanMatch.name)


def _cfg(*extra: str) -> RunConfig:
    return apply_overrides(RunConfig(), [f"method.name={MeanMatch.name}", "method.ipc=2", *extra])


def test_loop_runs_the_default_iterations_and_lowers_the_loss(digits_train):
    result = run_method(_cfg(), digits_train, progress=False)
    assert result.iterations == 6 and len(result.history) == 6
    assert result.history[-1] < result.history[0]
    assert result.params == {"lr": 0.5, "batch": 16}


def test_same_seed_same_result_other_seed_differs(digits_train):
    a = run_method(_cfg(), digits_train, progress=False).synthetic.images
    b = run_method(_cfg(), digits_train, progress=False).synthetic.images
    c = run_method(_cfg("seed=1"), digits_train, progress=False).synthetic.images
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_resume_from_checkpoint_matches_uninterrupted_run(digits_train, tmp_path: Path):
    full = run_method(_cfg("method.iterations=8"), digits_train, progress=False)
    ckpt = tmp_path / "run.ckpt"
    stop_at = 3

    class Stop(Exception):
        pass

    def interrupt(it, loss, syn):
        if it == stop_at:
            raise Stop

    with pytest.raises(Stop):
        run_method(_cfg("method.iterations=8", "method.checkpoint_every=2"), digits_train, progress=False,
                   checkpoint=ckpt, callbacks=(interrupt,))
    assert ckpt.is_file()
    resumed = run_method(_cfg("method.iterations=8", "method.checkpoint_every=2"), digits_train, progress=False,
                         checkpoint=ckpt, resume=True)
    assert torch.equal(resumed.synthetic.images, full.synthetic.images)
    assert resumed.history == full.history


def test_method_settings_are_validated(digits_train):
    with pytest.raises(ConfigError, match="Did you mean 'batch'"):
        run_method(_cfg("method.bathc=3"), digits_train, progress=False)
    with pytest.raises(ConfigError, match="method.lr must be a number"):
        run_method(_cfg('method.lr="fast"'), digits_train, progress=False)
    with pytest.raises(UnknownNameError, match="Valid methods"):
        run_method(apply_overrides(RunConfig(), ["method.name=nope"]), digits_train, progress=False)
    with pytest.raises(MismatchError, match="smallest class"):
        run_method(_cfg("method.ipc=1000"), digits_train, progress=False)


def _ctrl_c_at(*iterations: int, times: int = 1):
    def callback(it, loss, syn):
        if it in iterations:
            for _ in range(times):
                signal.raise_signal(signal.SIGINT)

    return callback


def test_ctrl_c_saves_the_last_completed_iteration_and_resume_is_bit_exact(digits_train, tmp_path: Path):
    cfg = _cfg("method.iterations=8")  # checkpoint_every 0: Ctrl-C still saves one
    full = run_method(cfg, digits_train, progress=False)
    ckpt, before = tmp_path / "run.ckpt", signal.getsignal(signal.SIGINT)
    with pytest.raises(Interrupted, match=f"interrupted at iteration 4/8; checkpoint saved to {ckpt}"):
        run_method(cfg, digits_train, progress=False, checkpoint=ckpt, callbacks=(_ctrl_c_at(3),))
    assert signal.getsignal(signal.SIGINT) is before
    assert torch.load(ckpt, weights_only=True)["iteration"] == 4
    resumed = run_method(cfg, digits_train, progress=False, checkpoint=ckpt, resume=True)
    assert torch.equal(resumed.synthetic.images, full.synthetic.images) and resumed.history == full.history


def test_a_second_ctrl_c_aborts_at_once(digits_train, tmp_path: Path):
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        run_method(_cfg(), digits_train, progress=False, checkpoint=tmp_path / "run.ckpt", callbacks=(_ctrl_c_at(1, times=2),))
    assert signal.getsignal(signal.SIGINT) is before and not (tmp_path / "run.ckpt").exists()


def test_ctrl_c_in_the_last_iteration_finishes_and_without_a_checkpoint_stays_a_keyboard_interrupt(digits_train, tmp_path):
    result = run_method(_cfg(), digits_train, progress=False, checkpoint=tmp_path / "c", callbacks=(_ctrl_c_at(5),))
    assert len(result.history) == 6
    with pytest.raises(KeyboardInterrupt):
        run_method(_cfg(), digits_train, progress=False, callbacks=(_ctrl_c_at(1),))


def test_no_handler_is_installed_outside_the_main_thread(digits_train, tmp_path: Path):
    seen, errors = [], []

    def record(it, loss, syn):
        seen.append(signal.getsignal(signal.SIGINT))

    def work():
        try:
            run_method(_cfg(), digits_train, progress=False, checkpoint=tmp_path / "c", callbacks=(record,))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert not errors and len(seen) == 6 and all(h is signal.getsignal(signal.SIGINT) for h in seen)


def test_a_diverging_run_stops_with_the_iteration_and_the_rates_to_lower(digits_train, tmp_path: Path):
    ckpt = tmp_path / "run.ckpt"
    cfg = _cfg("method.lr=100.0", "method.iterations=50", "method.checkpoint_every=1")
    with pytest.raises(Diverged, match=r"became (inf|nan) at iteration \d+ of 50.*method\.lr=100\.0") as caught:
        run_method(cfg, digits_train, progress=False, checkpoint=ckpt)
    assert str(ckpt) in str(caught.value)
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert all(torch.isfinite(t).all() for t in saved["tensors"].values() if t.is_floating_point())


def _checkpointed(digits_train, tmp_path: Path, *extra: str) -> Path:
    """A checkpoint after 2 of 4 iterations of ``_cfg(*extra)``."""
    ckpt = tmp_path / "run.ckpt"

    class Stop(Exception):
        pass

    def stop(it, loss, syn):
        if it == 2:
            raise Stop

    with pytest.raises(Stop):
        run_method(_cfg("method.iterations=4", "method.checkpoint_every=2", *extra), digits_train, progress=False,
                   checkpoint=ckpt, callbacks=(stop,))
    return ckpt


def test_the_checkpoint_records_its_runs_identity(digits_train, tmp_path: Path):
    ckpt = _checkpointed(digits_train, tmp_path, "seed=3")
    identity = json.loads(torch.load(ckpt, weights_only=True)["identity"])
    config = identity["config"]
    assert (config["method.name"], config["data.name"], config["method.ipc"], config["seed"], config["model"]) == \
        (MeanMatch.name, "digits", 2, 3, "convnet")
    assert config["method.params.lr"] == 0.5 and len(identity["config_sha256"]) == 64
    assert "device" not in config and "method.checkpoint_every" not in config


@pytest.mark.parametrize("change, words", [
    ("seed=1", "seed was 0, now 1"),
    ("method.ipc=3", "method.ipc was 2, now 3"),
    ("model=mlp", 'model was "convnet", now "mlp"'),
    ("method.lr=0.25", "method.params.lr was 0.5, now 0.25"),
    ("method.iterations=5", "method.iterations was 4, now 5"),
])
def test_resume_with_another_config_names_the_field_that_differs(change, words, digits_train, tmp_path: Path):
    ckpt = _checkpointed(digits_train, tmp_path)
    with pytest.raises(MismatchError, match="belongs to another run") as caught:
        run_method(_cfg("method.iterations=4", change), digits_train, progress=False, checkpoint=ckpt, resume=True)
    assert words in str(caught.value) and "run without --resume" in str(caught.value)


def test_settings_that_do_not_change_the_result_may_differ_on_resume(digits_train, tmp_path: Path):
    full = run_method(_cfg("method.iterations=4"), digits_train, progress=False)
    ckpt = _checkpointed(digits_train, tmp_path)
    resumed = run_method(_cfg("method.iterations=4", "method.checkpoint_every=0", "data.root='elsewhere'"),
                         digits_train, progress=False, checkpoint=ckpt, resume=True)
    assert torch.equal(resumed.synthetic.images, full.synthetic.images) and resumed.history == full.history


def _rewrite(ckpt: Path, **changes) -> None:
    state = torch.load(ckpt, weights_only=True)
    state.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del state[key]
    torch.save(state, ckpt)


@pytest.mark.parametrize("damage, words", [
    (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "truncated or corrupt"),
    (lambda p: p.write_bytes(b""), "truncated or corrupt"),
    (lambda p: p.write_bytes(b"\x00junk" * 100), "truncated or corrupt"),
    (lambda p: torch.save([1, 2], p), "a list, not a checkpoint"),
    (lambda p: _rewrite(p, identity=None), "records no run identity"),
    (lambda p: _rewrite(p, iteration=99), "iteration 99 is not between 0 and 4"),
    (lambda p: _rewrite(p, history=[1.0]), "loss history does not match"),
    (lambda p: _rewrite(p, tensors={"images": torch.zeros(3)}), "does not fit this run"),
    (lambda p: _rewrite(p, tensors={"images": torch.zeros(1, 1, 8, 8)}), "images has shape (1, 1, 8, 8), the run's"),
    (lambda p: _rewrite(p, generators="x"), "tensors are missing"),
])
def test_a_damaged_checkpoint_is_a_clean_error_that_says_how_to_recover(damage, words, digits_train, tmp_path):
    ckpt = _checkpointed(digits_train, tmp_path)
    damage(ckpt)
    with pytest.raises(ArtifactError, match="delete it, or run without --resume, to start afresh") as caught:
        run_method(_cfg("method.iterations=4"), digits_train, progress=False, checkpoint=ckpt, resume=True)
    assert words in str(caught.value) and str(ckpt) in str(caught.value)
