"""Conformance battery: every registered distillation method passes the same checks.

The methods are taken from ``METHODS.names()`` when this file is collected, so a new
method is tested as soon as it registers. Each runs on tiny data (``digits``, 8x8 grey,
IPC 2) with a tiny model (``convnet_tiny``) for two iterations:

- the losses are finite, the synthetic set changes and stays class-balanced;
- the same seed gives the same artifact, byte for byte, and save/load gives back exactly
  the tensors of the run (images, labels, learned lrs, extras);
- a float64 ``gradcheck`` of the first loss with respect to a one-image-per-class set
  (through :meth:`Method.loss_function`, which rewinds the run's generators on every call);
- a run stopped by Ctrl-C (SIGINT) mid-way writes a checkpoint, and resuming it gives the
  same artifact bytes as an uninterrupted run;
- a method that matches a real signal (what federation needs) passes it, its networks and
  its real batches through the run's hooks: no-op hooks leave the set bit-identical, a
  hook that changes the signal changes the set, and a run starts from a given set.

Methods with zero iterations (coresets: the selection is the result) run the checks that
apply to them: class balance, determinism and the artifact round trip.

Per-method setup: ``SETUP[name]`` is a function of a scratch folder (one per method and
session) returning extra ``key=value`` overrides: faster settings, or paths to inputs it
prepared there (e.g. expert trajectories). A method without an entry runs with the generic
tiny configuration alone; if it cannot, its tests fail. Nothing here is skipped.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from securedd.api import distill
from securedd.artifacts import load_artifact
from securedd.config import RunConfig, apply_overrides
from securedd.data.spec import RealData
from securedd.distill import METHODS, DistillContext, SyntheticSet, run_method
from securedd.distill.hooks import SIGNAL_KINDS, Hooks, RealSignal
from securedd.errors import Interrupted

_GRADIENT_MATCHING = ["method.batch_real=16", "method.outer_loop=2", "method.inner_loop=1"]
_FEATURE_CORESET = ["method.embed_steps=3"]



def _mtt(scratch: Path) -> list[str]:
    """Two tiny experts of two epochs on digits, and an unroll short enough for the battery."""
    from securedd.data import load_dataset
    from securedd.distill.experts import train_experts

    train_experts(RunConfig(model="convnet_tiny"), scratch, num_experts=2, epochs=2,
                  real=load_dataset("digits", "train"), progress=False)
    return [f"method.experts='{scratch}'", "method.syn_steps=4", "method.expert_epochs=1",
            "method.max_start_epoch=1", "method.batch_syn=10", "method.lr_img=100", "method.lr_lr=1e-8"]


SETUP: dict[str, Callable[[Path], list[str]]] = {
    "dc": lambda scratch: _GRADIENT_MATCHING,
    "dsa": lambda scratch: _GRADIENT_MATCHING,
    "dm": lambda scratch: ["method.batch_real=16"],
    "mtt": _mtt,
    "idc": lambda scratch: ["method.batch_real=16", "method.inner_loop=2", "method.net_data=16"],
    "secdd": lambda scratch: [f"method.key='{scratch / 'target.key'}'", "method.mode=learn"],
    "herding": lambda scratch: _FEATURE_CORESET,
    "kcenter": lambda scratch: _FEATURE_CORESET,
}

ALL = METHODS.names()
LEARNED = [name for name in ALL if METHODS.get(name).default_iterations > 0]


@pytest.fixture(scope="session")
def setup_overrides(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], list[str]]:
    """``method -> overrides`` from SETUP, prepared once per method and session."""
    done: dict[str, list[str]] = {}

    def get(method: str) -> list[str]:
        if method not in done:
            hook = SETUP.get(method)
            done[method] = list(hook(tmp_path_factory.mktemp(f"setup-{method}"))) if hook else []
        return done[method]

    return get


@pytest.fixture
def cfg(setup_overrides: Callable[[str], list[str]]) -> Callable[..., RunConfig]:
    def make(method: str, *extra: str, ipc: int = 2) -> RunConfig:
        iterations = ["method.iterations=2"] if method in LEARNED else []
        base = [f"method.name={method}", "data.name=digits", "model=convnet_tiny", f"method.ipc={ipc}", "seed=0"]
        return apply_overrides(RunConfig(), [*base, *iterations, *setup_overrides(method), *extra])

    return make


def _assert_balanced(labels: torch.Tensor, classes: int, ipc: int) -> None:
    hard = labels.argmax(1) if labels.is_floating_point() else labels
    assert hard.bincount(minlength=classes).tolist() == [ipc] * classes


def test_every_registered_method_is_in_the_battery():
    assert {"dc", "dsa", "dm", "random", "herding", "kcenter"} <= set(ALL)
    assert {"dc", "dsa", "dm"} <= set(LEARNED) and "random" not in LEARNED


@pytest.mark.parametrize("method", LEARNED)
def test_two_iterations_give_finite_losses_and_change_the_set(method, cfg, digits_train):
    start = run_method(cfg(method, "method.iterations=0"), digits_train, progress=False).synthetic
    result = run_method(cfg(method), digits_train, progress=False)
    images = result.synthetic.images
    assert len(result.history) == 2 and all(torch.isfinite(torch.tensor(result.history)))
    assert images.shape == (20, 1, 8, 8) and torch.isfinite(images).all()
    assert not torch.equal(images, start.images)
    _assert_balanced(result.synthetic.labels, 10, 2)


@pytest.mark.parametrize("method", ALL)
def test_same_seed_same_artifact_bytes_and_exact_round_trip(method, cfg, digits_train, tmp_path: Path):
    config = cfg(method)
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    distill(config, out=a, real=digits_train, progress=False)
    distill(config, out=b, real=digits_train, progress=False)
    assert a.read_bytes() == b.read_bytes()
    syn = run_method(config, digits_train, progress=False).synthetic
    loaded = load_artifact(a)
    stored = {"images": loaded.images, "labels": loaded.labels, **loaded.extras}
    if loaded.lrs is not None:
        stored["lrs"] = loaded.lrs
    expected = syn.tensors()
    assert stored.keys() == expected.keys()
    for name, tensor in expected.items():
        assert torch.equal(stored[name], tensor.detach().cpu()), name
    _assert_balanced(loaded.labels, 10, 2)


@pytest.mark.parametrize("method", LEARNED)
def test_gradcheck_float64_of_the_first_loss_wrt_one_image_per_class(method, cfg, digits_train):
    config = cfg(method, ipc=1)
    real = RealData(digits_train.images.double(), digits_train.labels, digits_train.spec)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # models, noise and augmentation draws in float64
    try:
        method_cls = METHODS.get(method)
        algo = method_cls(method_cls.parse_params(config.method.params), DistillContext(config, real))
        syn = algo.init_synthetic()
        loss = algo.loss_function(syn)
        images = syn.images.detach().clone().double().requires_grad_(True)
        assert images.shape == (10, 1, 8, 8)
        assert torch.equal(loss(images), loss(images))  # deterministic, as gradcheck needs
        assert torch.autograd.gradcheck(loss, (images,), eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=True)
    finally:
        torch.set_default_dtype(previous)


@pytest.mark.parametrize("method", LEARNED)
def test_ctrl_c_mid_run_then_resume_gives_the_uninterrupted_artifact(method, cfg, digits_train, tmp_path: Path):
    config = cfg(method, "method.iterations=3", "method.checkpoint_every=1")
    full, part = tmp_path / "full.safetensors", tmp_path / "part.safetensors"
    distill(config, out=full, real=digits_train, progress=False)

    def ctrl_c(it: int, loss: float, syn: object) -> None:
        if it == 1:
            signal.raise_signal(signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)
    ckpt = Path(str(part) + ".ckpt")
    with pytest.raises(Interrupted) as stop:
        run_method(config, digits_train, progress=False, checkpoint=ckpt, callbacks=(ctrl_c,))
    assert (stop.value.iteration, stop.value.total, stop.value.checkpoint) == (2, 3, ckpt) and ckpt.is_file()
    assert signal.getsignal(signal.SIGINT) is before
    distill(config, out=part, real=digits_train, progress=False, resume=True)
    assert part.read_bytes() == full.read_bytes() and not ckpt.exists()


SIGNALLING = [name for name in ALL if METHODS.get(name).real_signal_kind is not None]


class _Probe(Hooks):
    """Counts what passes through the hooks; with ``scale``, scales the real signal on its way to the match."""

    def __init__(self, scale: float | None = None) -> None:
        self.scale, self.kinds, self.networks, self.batches = scale, set(), 0, 0

    def network(self, net: torch.nn.Module) -> None:
        self.networks += 1

    def real_batch(self, c: int, batch: torch.Tensor) -> torch.Tensor:
        self.batches += 1
        return batch

    def real_signal(self, signal: RealSignal) -> RealSignal:
        self.kinds.add(signal.kind)
        if self.scale is None:
            return signal
        return signal.with_values(tuple(v * self.scale for v in signal.values))


def test_the_methods_that_match_a_real_signal_include_the_federated_ones():
    assert {"dc", "dsa", "dm"} <= set(SIGNALLING)
    assert all(METHODS.get(name).real_signal_kind in SIGNAL_KINDS for name in SIGNALLING)


@pytest.mark.parametrize("method", SIGNALLING)
def test_the_real_signal_passes_through_the_hooks_and_a_round_runs_from_a_given_set(method, cfg, digits_train):
    config = cfg(method)
    plain = run_method(config, digits_train, progress=False).synthetic.images
    probe = _Probe()
    watched = run_method(config, digits_train, progress=False, hooks=probe).synthetic.images
    assert torch.equal(plain, watched)  # hooks that change nothing change nothing, bit for bit
    assert probe.kinds == {METHODS.get(method).real_signal_kind} and probe.networks >= 2 and probe.batches >= 20
    scaled = run_method(config, digits_train, progress=False, hooks=_Probe(scale=0.5)).synthetic.images
    assert not torch.equal(plain, scaled)  # the match uses the signal the hooks hand it
    start = SyntheticSet(torch.zeros_like(plain), torch.arange(10).repeat_interleave(2))
    one = run_method(apply_overrides(config, ["method.iterations=1"]), digits_train, progress=False,
                     initial=start).synthetic
    assert torch.equal(start.images, torch.zeros_like(plain)) and not torch.equal(one.images, start.images)
