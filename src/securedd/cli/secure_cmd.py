"""``securedd keygen`` / ``sign`` / ``verify`` / ``train``: the two ends of a secure transmission."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from securedd.api import evaluate
from securedd.artifacts import load_artifact
from securedd.attacks.key_search import trained_network
from securedd.cli.common import add_data_flags, echo, examples
from securedd.cli.trust import add_signature_flags, load_checked
from securedd.errors import ConfigError
from securedd.secure.keys import load_key
from securedd.secure.signing import generate_signing_keys, sign_artifact, signature_path
from securedd.store import atomic_write_bytes, check_output


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("keygen", help="make an Ed25519 key pair for signing artifacts, or a SecDD target key",
                       formatter_class=fmt,
                       description="Writes NAME.pem (private: keep it) and NAME.pub.pem (public: give it to "
                                   "the receivers). With --target MODEL it writes instead the SecDD key the "
                                   "receiver makes: MODEL and a fresh 63-bit initialisation seed, in file NAME "
                                   "(owner-only), to share with the sender out of band.",
                       epilog=examples("securedd keygen --out sender",
                                       "securedd keygen --target lenet --out target.key"))
    p.add_argument("--out", required=True, metavar="NAME", help="writes NAME.pem and NAME.pub.pem (with --target: "
                                                                "the key file NAME)")
    p.add_argument("--target", metavar="MODEL", help="make a SecDD target key for this architecture instead")
    p.add_argument("--scheme", default="xavier", help="the target key's initialisation scheme (default: xavier)")
    p.set_defaults(run=run_keygen)

    p = sub.add_parser("sign", help="sign an artifact with a private Ed25519 key", formatter_class=fmt,
                       description="Writes ARTIFACT.sig: an Ed25519 signature of the artifact's bytes.",
                       epilog=examples("securedd sign set.safetensors --private sender.pem"))
    p.add_argument("artifact")
    p.add_argument("--private", required=True, metavar="PEM", help="the sender's private key (securedd keygen)")
    p.set_defaults(run=run_sign)

    p = sub.add_parser("verify", help="check an artifact's signature with the sender's public key",
                       formatter_class=fmt,
                       description="Exit 0 when ARTIFACT.sig is the sender's signature of these exact bytes; "
                                   "exit 2, refusing the file, otherwise.",
                       epilog=examples("securedd verify set.safetensors --public sender.pub.pem"))
    p.add_argument("artifact")
    p.add_argument("--public", required=True, metavar="PEM", help="the sender's public key")
    p.add_argument("--signature", metavar="FILE", help="signature file (default: ARTIFACT.sig)")
    p.set_defaults(run=run_verify)

    p = sub.add_parser("train", help="the receiving end of SecDD: train the key's network on an artifact",
                       formatter_class=fmt,
                       description="Rebuilds the target network from the key, applies the artifact's learned GD "
                                   "steps to it and reports its test accuracy. With --public, the artifact's "
                                   "signature is checked first, a file that fails is refused, and the bytes "
                                   "checked are the bytes used; without it a warning says no signature was "
                                   "checked (--require-signature makes that an error).",
                       epilog=examples(
                           "securedd train secret.safetensors --key target.key",
                           "securedd train secret.safetensors --key target.key --public sender.pub.pem "
                           "--save model.safetensors",
                           "securedd train secret.safetensors --key target.key --public sender.pub.pem "
                           "--require-signature",
                       ))
    p.add_argument("artifact")
    p.add_argument("--key", required=True, metavar="FILE", help="the SecDD key file (architecture and seed)")
    add_signature_flags(p)
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    p.add_argument("--save", metavar="FILE", help="also write the trained network's weights (.safetensors, "
                                                    "loadable with safetensors.torch.load_file)")
    add_data_flags(p)
    p.set_defaults(run=run_train)


def save_network(net: torch.nn.Module, path: str | Path, model: str, artifact_sha256: str) -> Path:
    """Write ``net``'s weights and buffers as safetensors, atomically, naming the model and the set it learned."""
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    data = save(tensors, metadata={"model": model, "trained_on": artifact_sha256})
    atomic_write_bytes(Path(path), data)
    return Path(path)


def run_keygen(args: argparse.Namespace) -> int:
    if args.target:
        from securedd.secure.keys import new_key, save_key

        if Path(args.out).exists():
            raise ConfigError(f"--out {args.out} exists: a key already shared would be lost; choose another path, or "
                              "delete it if it was never used")
        check_output(args.out, what="--out")
        key = new_key(args.target, args.scheme)
        echo(f"wrote {save_key(key, args.out)}: a {key.model} SecDD key (secret: share it with the sender out of band "
             "only; distil with method.key=FILE)")
        return 0
    for suffix in (".pem", ".pub.pem"):
        check_output(str(args.out) + suffix, what="--out")
    private, public = generate_signing_keys(args.out)
    echo(f"wrote {private} (private, keep it) and {public} (public)")
    return 0


def run_sign(args: argparse.Namespace) -> int:
    check_output(signature_path(args.artifact), what="the signature")
    load_artifact(args.artifact)  # sign only what verifies as an artifact
    out = sign_artifact(args.artifact, args.private)
    echo(f"wrote {out}")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    checked = load_checked(args)
    echo(f"{args.artifact}: signature ok ({checked.status}), {checked.size} bytes, "
         f"sha256 {checked.artifact.sha256[:16]}...")
    return 0


def run_train(args: argparse.Namespace) -> int:
    for flag in ("json", "save"):
        if getattr(args, flag):
            check_output(getattr(args, flag), what=f"--{flag}")
    checked = load_checked(args)
    if checked.signer is not None:
        echo(f"signature ok: {checked.status}")
    art, size = checked.artifact, checked.size
    key = load_key(args.key)
    sig = signature_path(args.artifact) if args.signature is None else Path(args.signature)
    sent = size + (sig.stat().st_size if sig.is_file() else 0)
    report = evaluate(art, key=key, data_root=args.data_root, device=args.device or "cpu", progress=not args.quiet,
                      skip_bad_images=args.skip_bad_images)
    acc = report.archs[0].accuracies[0]
    echo(f"{key.model} from the key, trained on {art.images.shape[0]} images in {art.lrs.numel() if art.lrs is not None else 0} "
         f"steps: test accuracy {acc:.2f}%")
    echo(f"transmitted: {sent} bytes ({size} artifact + {sent - size} signature)")
    if args.save:
        echo(f"wrote {save_network(trained_network(art, key), args.save, key.model, art.sha256)}")
    if args.json:
        payload = {"artifact": str(args.artifact), "sha256": art.sha256, "bytes": size, "transmitted_bytes": sent,
                   "model": key.model, "accuracy": acc, **report.to_dict()}
        atomic_write_bytes(Path(args.json), json.dumps(payload, indent=2).encode())
    return 0
