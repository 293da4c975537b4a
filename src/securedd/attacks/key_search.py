"""What an eavesdropper gets from an intercepted SecDD artifact without its key.

The adversary holds the artifact (images, soft labels, learned step rates, replay
protocol) but not the key (architecture, initialisation seed). :func:`key_search` tries
candidate keys, replays the artifact's steps on each candidate network and must pick one
using only what it has: the candidate's loss on the distilled set itself after the
replay (the set was made to fit its key's network, so the adversary bets on the candidate
it fits best). The report gives the test accuracy of the pick, the best any candidate
reached (which the adversary cannot know) and, when the key is supplied for the
comparison, the key holder's accuracy.

:func:`resemblance` measures how much the transmitted images look like real data: for
each, the nearest training image (Euclidean distance in pixel space) and the SSIM between
the two (``scikit-image``).

The attack: :class:`KeySearch` (``key-search``) on a :class:`KeySearchTarget`.

Example:
    >>> candidates = candidate_keys(["lenet", "mlp"], seeds_per_model=2, budget=3, seed=0)
    >>> len(candidates), sorted({c.model for c in candidates}) == ["lenet", "mlp"]
    (3, True)
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from skimage.metrics import structural_similarity

from securedd.artifacts import Artifact
from securedd.attacks.base import ATTACKS, Attack, AttackResult
from securedd.data.spec import RealData
from securedd.errors import ConfigError, MismatchError
from securedd.evaluation.protocols import EvalHints
from securedd.models.init import INIT_SCHEMES
from securedd.models.registry import MODELS
from securedd.secure.keys import KEY_SEED_BITS, TargetKey
from securedd.training import score_model, soft_label_loss

__all__ = ["DEFAULT_BUDGET", "DEFAULT_SEEDS", "SECONDS_PER_YEAR", "Candidate", "KeySearch", "KeySearchParams",
           "KeySearchResult", "KeySearchTarget", "candidate_keys", "expected_search_years", "fitting_models",
           "key_search", "key_space", "replay_key", "resemblance", "trained_network"]

DEFAULT_BUDGET = 60  # keys the default key search tries
DEFAULT_SEEDS = 20  # at most this many seeds per (architecture, scheme)
SECONDS_PER_YEAR = 365.25 * 24 * 3600


def key_space(models: int, schemes: int) -> int:
    """Distinct keys over ``models`` architectures and ``schemes`` initialisation schemes: each
    pair has ``2**KEY_SEED_BITS`` seeds."""
    if models < 1 or schemes < 1:
        raise ConfigError(f"a key space needs >= 1 architecture and scheme; got {models} and {schemes}")
    return int(models * schemes * 2**KEY_SEED_BITS)


def expected_search_years(keys: int, seconds_per_key: float) -> float:
    """CPU-years an exhaustive search expects to need to hit one key uniform over ``keys``
    (half of them on average), at ``seconds_per_key`` per candidate tried."""
    if keys < 1 or not seconds_per_key > 0:
        raise ConfigError(f"need keys >= 1 and seconds_per_key > 0; got {keys} and {seconds_per_key}")
    return (keys + 1) / 2 * seconds_per_key / SECONDS_PER_YEAR


@dataclass(frozen=True)
class Candidate:
    """One tried key: its self-fit score (lower: the set fits it better) and test accuracy."""

    model: str
    seed: int
    init_scheme: str
    self_loss: float
    accuracy: float


@dataclass
class KeySearchResult(AttackResult):
    """The candidates tried, the adversary's pick and, if known, the key holder's accuracy.

    ``resemblance`` (when the attack had the training split): :func:`resemblance` of the
    transmitted images.
    """

    candidates: list[Candidate] = field(default_factory=list)
    key_accuracy: float | None = None
    resemblance: dict[str, Any] | None = None
    seconds_per_key: float | None = None
    """Mean wall-clock seconds to replay one candidate and score it on the set itself: what
    the adversary pays per key (the test scoring, for the report only, is not counted)."""

    def curve(self) -> list[dict[str, float]]:
        """After each candidate tried, in order: the test accuracy of the adversary's pick so far
        (lowest loss on the set) and of the best candidate so far (unknowable to it)."""
        out: list[dict[str, float]] = []
        pick: Candidate | None = None
        best = float("-inf")
        for k, c in enumerate(self.candidates, 1):
            if pick is None or c.self_loss < pick.self_loss:
                pick = c
            best = max(best, c.accuracy)
            out.append({"tried": k, "pick_accuracy": pick.accuracy, "best_accuracy": best})
        return out

    @property
    def pick(self) -> Candidate:
        """The candidate the adversary chooses: the lowest loss on the distilled set."""
        return min(self.candidates, key=lambda c: c.self_loss)

    @property
    def best(self) -> Candidate:
        """The candidate with the highest test accuracy (unknowable to the adversary)."""
        return max(self.candidates, key=lambda c: c.accuracy)

    def by_model(self) -> dict[str, dict[str, float]]:
        """Per architecture: candidates tried, mean and max test accuracy."""
        out: dict[str, dict[str, float]] = {}
        for name in sorted({c.model for c in self.candidates}):
            accs = [c.accuracy for c in self.candidates if c.model == name]
            out[name] = {"tried": len(accs), "mean": float(np.mean(accs)), "max": float(np.max(accs))}
        return out

    def to_dict(self) -> dict[str, Any]:
        out = {"key_accuracy": self.key_accuracy, "pick": asdict(self.pick), "best": asdict(self.best),
               "by_model": self.by_model(), "candidates": [asdict(c) for c in self.candidates],
               "seconds_per_key": self.seconds_per_key}
        if self.resemblance is not None:
            out["resemblance"] = self.resemblance
        return out

    @property
    def summary(self) -> str:
        holder = f", key holder {self.key_accuracy:.2f}%" if self.key_accuracy is not None else ""
        return (f"tried {len(self.candidates)} keys: the adversary's pick ({self.pick.model}) reaches "
                f"{self.pick.accuracy:.2f}% test accuracy, the best candidate {self.best.accuracy:.2f}%{holder}")


def fitting_models(art: Artifact) -> list[str]:
    """Registered architectures that accept the artifact's image shape."""
    from securedd.models import create_model

    names = []
    for name in MODELS.names():
        try:
            create_model(name, art.spec.shape, art.spec.num_classes)
        except Exception:  # noqa: BLE001 - an architecture that cannot take this shape is not a candidate
            continue
        names.append(name)
    return names


def candidate_keys(models: list[str], seeds_per_model: int, budget: int, seed: int = 0,
                   schemes: tuple[str, ...] = ("xavier",)) -> list[TargetKey]:
    """``budget`` distinct random keys over ``models`` x ``schemes`` x 63-bit seeds.

    Each (model, scheme) pair gets at most ``seeds_per_model`` seeds; pairs are visited
    round-robin so a small budget still covers every architecture.
    """
    rng = random.Random(seed)
    for scheme in schemes:
        if scheme not in INIT_SCHEMES:
            raise ConfigError(f"unknown init scheme '{scheme}'; valid: {', '.join(INIT_SCHEMES)}")
    pairs = [(m, s) for m in models for s in schemes]
    keys: list[TargetKey] = []
    for _ in range(seeds_per_model):
        for model, scheme in pairs:
            if len(keys) == budget:
                return keys
            keys.append(TargetKey(model, rng.getrandbits(63), scheme))
    return keys


def trained_network(art: Artifact, key: TargetKey) -> torch.nn.Module:
    """``key``'s network after the artifact's learned GD steps: what the receiver of a SecDD set gets.

    Raises:
        MismatchError: the artifact holds no learned GD schedule (keys apply to DD, SLDD and SecDD sets).
    """
    hints = EvalHints.of(art)
    return hints.get_protocol().apply_schedule(key.network(art.spec.shape, art.spec.num_classes), art, hints)


def replay_key(art: Artifact, key: TargetKey, test: RealData, timing: list[float] | None = None) -> Candidate:
    """Replay the artifact on ``key``'s network; its loss on the distilled set and test accuracy.

    ``timing``: receives the seconds the replay and the set's own loss took (the adversary's cost).
    """
    start = time.perf_counter()
    net = trained_network(art, key)
    with torch.no_grad():  # the set's own loss: every image once
        self_loss = float(soft_label_loss(net(art.images), art.labels))
    if timing is not None:
        timing.append(time.perf_counter() - start)
    accuracy = score_model(net, test).accuracy
    return Candidate(key.model, key.seed, key.init_scheme, self_loss if np.isfinite(self_loss) else float("inf"),
                     accuracy)


def key_search(art: Artifact, test: RealData, keys: list[TargetKey], *, true_key: TargetKey | None = None,
               progress: bool = False) -> KeySearchResult:
    """Try every key in ``keys`` (see :func:`candidate_keys`); ``true_key`` only for the comparison."""
    from tqdm.auto import tqdm

    report = KeySearchResult()
    timing: list[float] = []
    for key in tqdm(keys, desc="key search", disable=not progress):
        report.candidates.append(replay_key(art, key, test, timing))
    report.seconds_per_key = sum(timing) / len(timing) if timing else None
    if true_key is not None:
        report.key_accuracy = replay_key(art, true_key, test).accuracy
    return report


def resemblance(art: Artifact, train: RealData, batch: int = 4096) -> dict[str, Any]:
    """For each transmitted image: the nearest training image, its pixel distance and their SSIM."""
    spec = art.spec
    if train.spec.shape != spec.shape:
        raise MismatchError(f"training images are {train.spec.shape}, the artifact's {spec.shape}")
    syn = spec.denormalize(art.images.float()).flatten(1)
    nearest = torch.zeros(len(syn), dtype=torch.long)
    best = torch.full((len(syn),), float("inf"))
    for start in range(0, len(train), batch):
        real = train.spec.denormalize(train.images[start : start + batch].float()).flatten(1)
        d = torch.cdist(syn, real)
        dist, idx = d.min(1)
        better = dist < best
        best[better], nearest[better] = dist[better], idx[better] + start
    ssim = []
    real_pixels = train.spec.denormalize(train.images[nearest].float())
    syn_pixels = spec.denormalize(art.images.float())
    for a, b in zip(syn_pixels, real_pixels, strict=True):
        a_np, b_np = a.permute(1, 2, 0).numpy(), b.permute(1, 2, 0).numpy()  # models need >= 8x8: 7x7 windows fit
        ssim.append(float(structural_similarity(a_np, b_np, data_range=1.0, channel_axis=2,
                                                win_size=7)))
    return {"nearest_index": nearest.tolist(), "distance": best.tolist(), "ssim": ssim,
            "mean_distance": float(best.mean()), "mean_ssim": float(np.mean(ssim))}


@dataclass(frozen=True)
class KeySearchTarget:
    """An intercepted artifact and the test split its candidates are scored on.

    ``train`` (optional): the training split, to measure how much the transmitted images
    resemble it. ``true_key`` (optional): the real key, only to report the key holder's
    accuracy beside the adversary's; the search never uses it.
    """

    artifact: Artifact
    test: RealData
    train: RealData | None = None
    true_key: TargetKey | None = None


@dataclass(frozen=True)
class KeySearchParams:
    """The adversary's budget and search space."""

    budget: int = DEFAULT_BUDGET
    """Keys tried."""
    seeds: int = DEFAULT_SEEDS
    """At most this many seeds per (architecture, scheme)."""
    models: tuple[str, ...] | None = None
    """Architectures tried (None: every registered one that fits the images)."""
    schemes: tuple[str, ...] = ("xavier", "default")
    """Initialisation schemes tried."""
    seed: int = 0
    """Seed of the adversary's random choices."""

    def __post_init__(self) -> None:
        if self.budget < 1 or self.seeds < 1:
            raise ConfigError(f"the key search needs budget >= 1 and seeds >= 1; got budget={self.budget}, "
                              f"seeds={self.seeds}")
        if not self.schemes:
            raise ConfigError(f"the key search needs at least one init scheme; valid: {', '.join(INIT_SCHEMES)}")
        for scheme in self.schemes:
            if scheme not in INIT_SCHEMES:
                raise ConfigError(f"unknown init scheme '{scheme}'; valid: {', '.join(INIT_SCHEMES)}")
        for model in self.models or ():
            MODELS.get(model)
        if self.models is not None and not self.models:
            raise ConfigError("models is empty: name at least one architecture, or none for every one that fits")


@ATTACKS.register("key-search")
class KeySearch(Attack[KeySearchTarget, KeySearchResult]):
    """Guess a SecDD set's key: replay the set on candidate networks, keep the one it fits best.

    Threat model: an eavesdropper intercepts the artifact (images, soft labels, learned
    step rates, replay protocol) but not the key file (the target network's architecture,
    initialisation scheme and 63-bit seed). It knows the model zoo and the
    initialisation schemes, has no labelled data of the task, and must choose a candidate
    by what it holds: the replayed network's loss on the distilled set itself. The test
    accuracy of its pick measures what the set gives away without the key.

    Paper: the SecDD setting builds on Wang, Zhu, Torralba and Efros, "Dataset
    Distillation", arXiv:1811.10959 (2018), where a set distilled for one fixed
    initialisation trains that network only.
    """

    name = "key-search"
    Params = KeySearchParams

    def run(self, target: KeySearchTarget, *, progress: bool = False) -> KeySearchResult:
        p: KeySearchParams = self.params
        art = target.artifact
        models = list(p.models) if p.models is not None else fitting_models(art)
        keys = candidate_keys(models, p.seeds, p.budget, p.seed, p.schemes)
        report = key_search(art, target.test, keys, true_key=target.true_key, progress=progress)
        if target.train is not None:
            report.resemblance = resemblance(art, target.train)
        return report
