"""The command-line side of each attack: its flags, how they build its target, what it prints.

``securedd attack NAME`` (:mod:`securedd.cli.attack_cmd`) looks ``NAME`` up in
:data:`COMMANDS`. An entry adds the attack's target flags (and the flags that set some of
its settings, kept from the older subcommands), builds the target, and reports the
result; settings always also come as ``attack.KEY=VALUE``. An attack without an entry is
listed but refused with a pointer to its Python API.
"""

from __future__ import annotations

import argparse
from typing import Any, ClassVar

import torch

from securedd.artifacts import Artifact, load_artifact
from securedd.attacks.base import AttackResult
from securedd.cli.common import add_data_flags, add_run_flags, default_out, echo, print_config, resolve_config
from securedd.data import load_dataset
from securedd.data.spec import RealData
from securedd.errors import ConfigError, DataError
from securedd.registry import Registry

__all__ = ["COMMANDS", "AttackCommand"]


class AttackCommand:
    """How ``securedd attack NAME`` builds the attack's target from its flags and reports the result."""

    description: ClassVar[str] = ""
    examples: ClassVar[tuple[str, ...]] = ()
    run_config: ClassVar[bool] = False
    """The command takes the run flags (``add_run_flags``): plain ``KEY=VALUE`` overrides are the run config's."""

    def add_flags(self, p: argparse.ArgumentParser) -> None:
        """The target's flags (and those that set settings)."""
        add_data_flags(p)

    def flag_settings(self, args: argparse.Namespace) -> dict[str, Any]:
        """The attack settings the flags given set (flags left at ``None`` or off set nothing)."""
        return {}

    def target(self, args: argparse.Namespace, overrides: list[str]) -> Any:
        """The attack's target; ``overrides``: the run config's ``KEY=VALUE`` overrides."""
        raise NotImplementedError

    def report(self, args: argparse.Namespace, params: Any, target: Any, result: AttackResult) -> None:
        """Print the result (and write any pictures); ``params``: the settings the attack ran with."""
        echo(result.summary)

    def payload(self, args: argparse.Namespace, target: Any, result: AttackResult) -> dict[str, Any]:
        """What ``--json`` writes."""
        return result.to_dict()


COMMANDS: Registry[type[AttackCommand]] = Registry("attack command")


def _given(args: argparse.Namespace, **settings: str) -> dict[str, Any]:
    """``{setting: args.<dest>}`` for each ``dest=setting`` whose flag was given (not None)."""
    return {setting: getattr(args, dest) for dest, setting in settings.items() if getattr(args, dest) is not None}


def _splits(art: Artifact, args: argparse.Namespace) -> tuple[RealData, RealData]:
    """The artifact's dataset: (train, test), normalised as the artifact is."""
    spec = art.spec
    skip = args.skip_bad_images
    train = load_dataset(spec.name, "train", root=args.data_root, download=args.download, spec=spec, skip_bad_images=skip)
    return train, load_dataset(spec.name, "test", root=args.data_root, spec=spec, skip_bad_images=skip)


@COMMANDS.register("key-search")
class KeySearchCommand(AttackCommand):
    description = ("Replays the artifact on candidate networks (every fitting architecture in the zoo, random seeds) "
                   "and picks the one the set fits best (lowest loss on the distilled set itself), as an adversary "
                   "without the key must. Reports the pick's test accuracy, the best candidate's, the key holder's "
                   "(with --key, for the comparison only) and how much the images resemble their nearest real "
                   "training images (pixel distance, SSIM, and a PNG of the pairs).")
    examples = ("securedd attack key-search secret.safetensors --budget 60",
                "securedd attack key-search secret.safetensors --models lenet --seeds 20 --budget 20 --key target.key",
                "securedd attack key-search secret.safetensors --json attack.json --grid neighbours.png",
                "securedd attack key-search secret.safetensors attack.budget=20 attack.schemes=xavier")

    def add_flags(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("artifact")
        p.add_argument("--budget", type=int, help="keys to try (attack.budget)")
        p.add_argument("--seeds", type=int, help="at most this many seeds per architecture and scheme (attack.seeds)")
        p.add_argument("--models", help="comma-separated architectures to try (default: every one that fits)")
        p.add_argument("--schemes", help="comma-separated initialisation schemes to try (attack.schemes)")
        p.add_argument("--key", metavar="FILE", help="the real key, only to report the key holder's accuracy beside")
        p.add_argument("--search-seed", type=int, help="seed of the adversary's random choices (attack.seed)")
        p.add_argument("--grid", metavar="PNG", help="write each image beside its nearest real training image")
        p.add_argument("--curve", metavar="PNG", help="plot test accuracy against keys tried (the pick and the best)")
        add_data_flags(p)

    def flag_settings(self, args: argparse.Namespace) -> dict[str, Any]:
        return _given(args, budget="budget", seeds="seeds", models="models", schemes="schemes", search_seed="seed")

    def target(self, args: argparse.Namespace, overrides: list[str]) -> Any:
        from securedd.attacks.key_search import KeySearchTarget
        from securedd.secure.keys import load_key

        art = load_artifact(args.artifact)
        train, test = _splits(art, args)
        return KeySearchTarget(art, test, train, load_key(args.key) if args.key else None)

    def report(self, args: argparse.Namespace, params: Any, target: Any, result: Any) -> None:
        from securedd.attacks.key_search import expected_search_years, fitting_models, key_space
        from securedd.visualize import save_neighbour_grid, save_search_curve

        art = target.artifact
        models = params.models or fitting_models(art)
        pick, best = result.pick, result.best
        echo(f"tried {len(result.candidates)} keys over {len(models)} architectures x {len(params.schemes)} schemes")
        echo("| architecture | keys tried | mean test acc. (%) | max test acc. (%) |\n|---|---|---|---|")
        for name, row in result.by_model().items():
            echo(f"| {name} | {row['tried']} | {row['mean']:.2f} | {row['max']:.2f} |")
        echo(f"adversary's pick (lowest loss on the set): {pick.model}, test accuracy {pick.accuracy:.2f}%")
        echo(f"best candidate (unknowable to the adversary): {best.model}, {best.accuracy:.2f}%")
        if result.key_accuracy is not None:
            echo(f"key holder: {result.key_accuracy:.2f}%")
        space = key_space(len(models), len(params.schemes))
        echo(f"key space searched: {space:.3g} keys; at the measured {result.seconds_per_key:.3g} s per key, an "
             f"exhaustive search expects {expected_search_years(space, result.seconds_per_key):.3g} CPU-years")
        if args.curve:
            echo(f"wrote {save_search_curve({'adversary': result.curve()}, args.curve, key_accuracy=result.key_accuracy)}")
        look = result.resemblance
        echo(f"nearest real training image: mean pixel distance {look['mean_distance']:.2f}, mean SSIM "
             f"{look['mean_ssim']:.3f}")
        if args.grid:
            real = art.spec.denormalize(target.train.images[look["nearest_index"]].float())
            echo(f"wrote {save_neighbour_grid(art, real, look['distance'], look['ssim'], args.grid)}")

    def payload(self, args: argparse.Namespace, target: Any, result: AttackResult) -> dict[str, Any]:
        return {"artifact": str(args.artifact), "sha256": target.artifact.sha256, **result.to_dict()}


@COMMANDS.register("train-on-intercept")
class TrainOnInterceptCommand(AttackCommand):
    description = ("An eavesdropper trains its own networks on an intercepted set, every standard way: each "
                   "architecture (attack.models), protocol (plain: 300 epochs; dsa: 1000 epochs with augmentation), "
                   "label use (soft or hard), optimiser (sgd, adam) and learning rate of a sweep. It picks each "
                   "learning rate and its best attack on --validation labelled training images of its own, never on "
                   "the test split, and reports the picks' test accuracy beside the key holder's (with --key, for the "
                   "comparison only).")
    examples = ("securedd attack train-on-intercept secret.safetensors --key target.key",
                "securedd attack train-on-intercept secret.safetensors attack.models=convnet,mlp "
                "attack.optimizers=sgd,adam attack.lrs=0.001,0.01,0.1 --json intercept.json")

    def add_flags(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("artifact")
        p.add_argument("--validation", type=int, default=10,
                       help="the attacker's own labelled images per class, drawn from the training split (default: 10)")
        p.add_argument("--key", metavar="FILE", help="the real key, only to report the key holder's accuracy beside")
        add_data_flags(p)

    def target(self, args: argparse.Namespace, overrides: list[str]) -> Any:
        from securedd.attacks.intercept import InterceptTarget, attacker_validation
        from securedd.secure.keys import load_key

        art = load_artifact(args.artifact)
        train, test = _splits(art, args)
        return InterceptTarget(art, attacker_validation(train, args.validation), test,
                               load_key(args.key) if args.key else None)

    def report(self, args: argparse.Namespace, params: Any, target: Any, result: Any) -> None:
        echo("| architecture | protocol | labels | optimiser | lr (picked) | validation acc. (%) | test acc. (%) |")
        echo("|---|---|---|---|---|---|---|")
        for a in sorted(result.picks(), key=lambda a: -a.validation_accuracy):
            echo(f"| {a.model} | {a.protocol} | {a.labels} | {a.optimizer} | {a.lr:g} | {a.validation_accuracy:.2f} | "
                 f"{a.test_accuracy:.2f} |")
        echo(result.summary)

    def payload(self, args: argparse.Namespace, target: Any, result: AttackResult) -> dict[str, Any]:
        return {"artifact": str(args.artifact), "sha256": target.artifact.sha256,
                "validation_per_class": args.validation, **result.to_dict()}


@COMMANDS.register("pretrained-finetune")
class PretrainedFinetuneCommand(TrainOnInterceptCommand):
    description = ("An eavesdropper pretrains each architecture (attack.models, default convnet) on --public, a "
                   "labelled dataset of another task converted to the artifact's shape, puts a fresh classifier on "
                   "it and fine-tunes it on the intercepted set every standard way, as train-on-intercept does. It "
                   "picks on --validation labelled images of its own and reports the picks' test accuracy beside the "
                   "key holder's (with --key).")
    examples = ("securedd attack pretrained-finetune secret.safetensors --public cifar10 --key target.key",
                "securedd attack pretrained-finetune secret.safetensors attack.pretrain_epochs=10 --public usps "
                "--public-images 2000 --json finetune.json")

    def add_flags(self, p: argparse.ArgumentParser) -> None:
        super().add_flags(p)
        p.add_argument("--public", required=True, metavar="DATASET",
                       help="the public dataset of another task to pretrain on (its training split, or its test "
                            "split where it has no other)")
        p.add_argument("--public-images", type=int, default=5000, help="its images used (default: 5000)")

    def target(self, args: argparse.Namespace, overrides: list[str]) -> Any:
        from securedd.attacks.intercept import FinetuneTarget, public_images
        from securedd.data import dataset_spec

        base = super().target(args, overrides)
        source = dataset_spec(args.public, root=args.data_root)
        try:
            public = load_dataset(args.public, "train", root=args.data_root, download=args.download, spec=source)
        except DataError as missing:
            try:  # a dataset shipped with one split (USPS's test split)
                public = load_dataset(args.public, "test", root=args.data_root, download=args.download, spec=source)
            except DataError:
                raise missing from None
        converted = public_images(public, args.public_images, base.artifact.spec)
        return FinetuneTarget(base.artifact, base.validation, base.test, base.true_key, public=converted)

    def payload(self, args: argparse.Namespace, target: Any, result: AttackResult) -> dict[str, Any]:
        return {**super().payload(args, target, result), "public": args.public, "public_images": len(target.public)}


@COMMANDS.register("kd-from-labels")
class KDFromLabelsCommand(PretrainedFinetuneCommand):
    description = ("An eavesdropper trains a teacher on the intercepted set (the train-on-intercept sweep, picked on "
                   "--validation labelled images of its own), labels --public-images unlabelled images of the task "
                   "with the teacher's class probabilities (--public: their labels are never read) and trains a "
                   "student on them. Reports the student's and the teacher's test accuracy beside the key holder's "
                   "(with --key).")
    examples = ("securedd attack kd-from-labels secret.safetensors --public mnist --public-images 5000 --key target.key",
                "securedd attack kd-from-labels secret.safetensors attack.models=convnet,mlp attack.student_epochs=50 "
                "--public usps")

    def report(self, args: argparse.Namespace, params: Any, target: Any, result: Any) -> None:
        super().report(args, params, target, result.teacher)
        echo(result.summary)


@COMMANDS.register("leakage")
class LeakageCommand(AttackCommand):
    description = ("The honest-but-curious server of federated distillation (SFDD): one worker runs a round of DC "
                   "on its shard from the server's set; the server, knowing the protocol, the batch size and "
                   "(unless --no-init) the worker's network initialisation, optimises a dummy batch with L-BFGS "
                   "until the same round on it reproduces the worker's returned set. Reports the paper's "
                   "standardised MSE (about 2: nothing learnt), PSNR and SSIM against the worker's real batch, and "
                   "writes a PNG of real vs reconstructed. The round has one matching step (IPC 1's schedule); the "
                   "network defaults to the attack-friendly ConvNet (sigmoid, no pooling).")
    examples = (
        "securedd attack leakage --dataset digits --model mlp --iterations 50 --grid leak.png",
        "securedd attack leakage --dataset mnist --data-root ~/data --clients 5 --json leak.json --grid leak.png",
        "securedd attack leakage --dataset mnist --data-root ~/data --defence ldpo-rld --json leak_ldpo.json",
        "securedd attack leakage --dataset mnist --data-root ~/data --batch-real 4 --learn-labels --no-init",
        "securedd attack leakage --dataset digits --model mlp attack.iterations=20 attack.inner=10",
    )
    run_config = True

    def add_flags(self, p: argparse.ArgumentParser) -> None:
        from securedd.cli.federate_cmd import add_defence_flags

        add_run_flags(p)
        p.set_defaults(model="convnet_attack", ipc=1)
        p.add_argument("--clients", type=int, default=5, help="clients the training data is split between (default: 5)")
        p.add_argument("--client", type=int, default=0, help="the worker attacked (default: 0)")
        p.add_argument("--round", type=int, default=0, help="the round (seeds the worker's network and batch)")
        p.add_argument("--batch-real", type=int, default=1,
                       help="real images per class in the worker's batch (default: 1)")
        p.add_argument("--iterations", type=int, help="L-BFGS steps at most (attack.iterations)")
        p.add_argument("--learn-labels", action="store_true", help="also reconstruct the labels (report their recovery)")
        p.add_argument("--no-init", action="store_true", help="the server does not know the worker's initialisation")
        add_defence_flags(p)
        p.add_argument("--grid", metavar="PNG", help="write the real batch above its reconstruction")

    def flag_settings(self, args: argparse.Namespace) -> dict[str, Any]:
        given = _given(args, iterations="iterations")
        if args.learn_labels:
            given["learn_labels"] = True
        if args.no_init:
            given["know_init"] = False
        return given

    def target(self, args: argparse.Namespace, overrides: list[str]) -> Any:
        from securedd.attacks.leakage import LeakageTarget
        from securedd.cli.federate_cmd import defence_from_args
        from securedd.config import apply_overrides

        cfg, preset = resolve_config(argparse.Namespace(**{**vars(args), "method": "dc", "overrides": overrides}))
        cfg = apply_overrides(cfg, [f"method.batch_real={args.batch_real}", "method.compile=false"])
        print_config(cfg, args.quiet, preset)
        return LeakageTarget.from_federation(cfg, args.clients, args.client, args.round, defence_from_args(args))

    def report(self, args: argparse.Namespace, params: Any, target: Any, result: Any) -> None:
        from securedd.visualize import save_pairs

        echo(result.summary)
        if args.grid:
            spec, found = target.shard.spec, result.found
            real, recon = spec.denormalize(found.real), spec.denormalize(found.reconstruction)
            mse = ((real.clamp(0, 1) - recon.clamp(0, 1)) ** 2).flatten(1).mean(1)
            echo(f"wrote {save_pairs(real, recon, [f'mse {v:.3f}' for v in mse.tolist()], args.grid, rows=('real', 'recon.'))}")

    def payload(self, args: argparse.Namespace, target: Any, result: AttackResult) -> dict[str, Any]:
        values = result.to_dict()
        return {"dataset": values.pop("dataset"), "model": values.pop("model"), "clients": args.clients, **values}


@COMMANDS.register("doorping")
class DoorpingCommand(AttackCommand):
    description = ("Federated distillation (SFDD) with Doorping workers: workers 0..K-1 stamp a trigger on 1% of "
                   "their shard, relabel those images to the target class and re-optimise the trigger whenever "
                   "their network changes. All clients run in this process over the federation's server loop; the "
                   "final set is written to --out, fresh networks are trained on it and scored: clean test "
                   "accuracy (CTA) and attack success rate (ASR) with worker 0's trigger.")
    examples = ("securedd attack doorping --dataset digits --ipc 1 --clients 3 --rounds 5 model=convnet_tiny "
                "attack.models=1 attack.epochs=50 --out door.safetensors",
                "securedd attack doorping --dataset mnist --data-root ~/data --clients 5 --malicious 2 "
                "--aggregator median --out door.safetensors --grid trigger.png")
    run_config = True

    def add_flags(self, p: argparse.ArgumentParser) -> None:
        add_run_flags(p)
        p.add_argument("--clients", type=int, default=5, help="data owners (default: 5)")
        p.add_argument("--malicious", type=int, help="workers 0..K-1 attack (attack.malicious; default: (clients-1)//2)")
        p.add_argument("--rounds", type=int, default=100, help="federated rounds (default: 100)")
        p.add_argument("--split", default="iid", help="iid (default) or dirichlet:ALPHA (label skew)")
        p.add_argument("--aggregator", default="mean", help="mean (the paper), fedavg, median or trimmed_mean")
        p.add_argument("--out", "-o", metavar="FILE", help="the federated set (default: out/doorping_...)")
        p.add_argument("--grid", metavar="PNG", help="also write test images beside the same images stamped with "
                                                    "worker 0's final trigger")

    def flag_settings(self, args: argparse.Namespace) -> dict[str, Any]:
        return _given(args, malicious="malicious")

    def target(self, args: argparse.Namespace, overrides: list[str]) -> Any:
        from securedd.attacks.doorping import DoorpingTarget
        from securedd.federated.settings import FederationSettings

        cfg, preset = resolve_config(argparse.Namespace(**{**vars(args), "method": args.method or "dc",
                                                           "overrides": overrides}))
        print_config(cfg, args.quiet, preset, rounds=True)
        out = args.out or str(default_out(cfg).with_name(f"doorping_{default_out(cfg).name}"))
        return DoorpingTarget(FederationSettings(cfg, clients=args.clients, rounds=args.rounds, split=args.split,
                                                 aggregator=args.aggregator, out=out))

    def report(self, args: argparse.Namespace, params: Any, target: Any, result: AttackResult) -> None:
        super().report(args, params, target, result)
        if args.grid:
            from securedd.attacks.doorping import DoorpingResult, save_trigger
            from securedd.data import load_dataset

            assert isinstance(result, DoorpingResult)
            cfg = target.settings.config
            test = target.test or load_dataset(cfg.data.name, "test", root=cfg.data.root, download=cfg.data.download,
                                               spec=result.artifact.spec, skip_bad_images=cfg.data.skip_bad_images)
            echo(f"wrote {save_trigger(test, result.trigger, args.grid)}")


def _set_model(args: argparse.Namespace, art: Artifact) -> torch.nn.Module:
    """``--model`` trained on the set as its protocol says (``--epochs``), seeded by ``--seed``."""
    from securedd.config import EvalConfig
    from securedd.evaluation.protocols import fresh_model
    from securedd.rng import make_generator

    return fresh_model(art, args.model, EvalConfig(epochs=args.epochs), make_generator(args.seed, "attack", "set-model"),
                       "this attack")


def _add_set_model_flags(p: argparse.ArgumentParser, samples: int, what: str) -> None:
    p.add_argument("artifact")
    p.add_argument("--model", default="convnet", help="the network trained on the set (default: convnet)")
    p.add_argument("--epochs", type=int, default=200, help="its training epochs, with DSA (default: 200)")
    p.add_argument("--samples", type=int, default=samples, help=f"{what} (default: {samples})")
    p.add_argument("--seed", type=int, default=0, help="seed of the network and of the sampled images")
    add_data_flags(p)


def _sample(data: RealData, n: int, seed: int, purpose: str) -> RealData:
    from securedd.rng import make_generator

    if n < 1:
        raise ConfigError(f"--samples must be >= 1; got {n}")
    return data.subset(torch.randperm(len(data), generator=make_generator(seed, "attack", purpose))[:n])


@COMMANDS.register("deepfool")
class DeepFoolCommand(AttackCommand):
    description = ("Trains a network on the set (the evaluation protocol, --epochs) and measures its accuracy under "
                   "foolbox's DeepFool on --samples test images over a sweep of budgets on pixels in [0, 1] "
                   "(attack.norm=linf or l2, attack.epsilons=...). Needs the [audit] extra (foolbox).")
    examples = ("securedd attack deepfool digits.safetensors --samples 200",
                "securedd attack deepfool digits.safetensors attack.norm=l2 attack.epsilons=0,0.5,1,2 --json df.json")

    def add_flags(self, p: argparse.ArgumentParser) -> None:
        _add_set_model_flags(p, 500, "test images attacked")

    def target(self, args: argparse.Namespace, overrides: list[str]) -> Any:
        from securedd.attacks.robustness import RobustnessTarget, require_foolbox

        require_foolbox()  # before the training, not after it
        art = load_artifact(args.artifact)
        _, test = _splits(art, args)
        return RobustnessTarget(_set_model(args, art), _sample(test, args.samples, args.seed, "deepfool"))


@COMMANDS.register("loss-threshold")
class LossThresholdCommand(AttackCommand):
    description = ("Trains a network on the set (the evaluation protocol, --epochs) and runs the loss-threshold "
                   "membership attack on it: members are --samples real training images (the pool the "
                   "distillation drew from), non-members as many test images. Reports the ROC AUC and the TPR at "
                   "0.1% and 1% FPR.")
    examples = ("securedd attack loss-threshold digits.safetensors --samples 500 --json mia.json",)

    def add_flags(self, p: argparse.ArgumentParser) -> None:
        _add_set_model_flags(p, 2000, "members scored, and as many non-members")

    def target(self, args: argparse.Namespace, overrides: list[str]) -> Any:
        from securedd.attacks.membership import MembershipTarget

        art = load_artifact(args.artifact)
        train, test = _splits(art, args)
        n = min(args.samples, len(train), len(test))
        members, others = _sample(train, n, args.seed, "members"), _sample(test, n, args.seed, "non-members")
        data = RealData(torch.cat([members.images, others.images]), torch.cat([members.labels, others.labels]),
                        art.spec)
        return MembershipTarget(_set_model(args, art), data, torch.arange(2 * n) < n)


@COMMANDS.register("poisoning")
class PoisoningCommand(AttackCommand):
    description = ("Applies a DD poisoning set (distilled with method.relabel=K:T on a network pool: securedd "
                   "poison) to the pool's held-out networks in its one GD step and scores them with the DD paper's "
                   "three metrics, beside random real images with incorrect labels.")
    examples = ("securedd attack poisoning poison.safetensors --data-root ~/data --json poison.json",)

    def add_flags(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("artifact")
        p.add_argument("--seed", type=int, help="seed of the baseline's random real images (attack.seed)")
        add_data_flags(p)

    def flag_settings(self, args: argparse.Namespace) -> dict[str, Any]:
        return _given(args, seed="seed")

    def target(self, args: argparse.Namespace, overrides: list[str]) -> Any:
        from securedd.attacks.poisoning import PoisoningTarget

        art = load_artifact(args.artifact)
        train, test = _splits(art, args)
        return PoisoningTarget(art, test, train)

    def report(self, args: argparse.Namespace, params: Any, target: Any, result: Any) -> None:
        echo(result.table())
        echo(result.summary)
