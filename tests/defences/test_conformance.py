"""Conformance battery: every registered defence passes the same checks.

The defences are taken from ``DEFENCES.names()`` when this file is collected, so a new
defence is tested as soon as it registers:

- its docstring states a threat model, its ``Params`` is a frozen dataclass whose
  defaults build it, unknown settings are refused with a message naming the defence, and
  ``to_dict`` round-trips through :func:`defence_from_dict`;
- it does what its stage promises on tiny inputs, deterministically: a client-stage
  defence changes a client's round on ``digits`` (through its hooks or its release) and
  the same seed gives the same update; a server-stage one keeps one wild reply among
  honest ones from dragging the aggregate out of the honest range; an artifact-stage one
  refuses a file changed by one byte.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from securedd.config import RunConfig, apply_overrides
from securedd.defences import DEFENCES, STAGES, defence_from_dict, make_defence
from securedd.errors import ArtifactError, ConfigError
from securedd.federated.client import local_update

ALL = DEFENCES.names()


def _cfg(method: str) -> RunConfig:
    return apply_overrides(RunConfig(), ["data.name=digits", f"method.name={method}", "method.ipc=1",
                                         "model=convnet_tiny", "seed=0", "method.batch_real=16"])


def test_the_documented_defences_are_registered():
    assert {"ldpo-rld", "localdp-laplace", "localdp-gaussian", "median", "trimmed-mean", "signing"} <= set(ALL)


@pytest.mark.parametrize("name", ALL)
def test_contract(name):
    cls = DEFENCES.get(name)
    assert cls.name == name and cls.stage in STAGES
    assert "Threat model:" in (cls.__doc__ or "")
    assert dataclasses.is_dataclass(cls.Params) and cls.Params.__dataclass_params__.frozen
    defence = make_defence(name)
    assert type(defence_from_dict(defence.to_dict())) is cls and defence_from_dict(defence.to_dict()).params == defence.params
    with pytest.raises(ConfigError, match=f"defence '{name}' has no setting 'bogus'"):
        make_defence(name, bogus=1)


CLIENT = [n for n in ALL if DEFENCES.get(n).stage == "client"]


@pytest.mark.parametrize("method", ["dc", "dm"])
@pytest.mark.parametrize("name", CLIENT)
def test_a_client_defence_changes_the_round_deterministically(name, method, digits_train):
    shard = digits_train.subset(torch.arange(0, len(digits_train), 3))
    images, labels = torch.randn(10, 1, 8, 8, generator=torch.Generator().manual_seed(0)), torch.arange(10)
    plain, _ = local_update(_cfg(method), shard, images, labels, client=0, round_=0)
    a, _ = local_update(_cfg(method), shard, images, labels, client=0, round_=0, defence=make_defence(name))
    b, _ = local_update(_cfg(method), shard, images, labels, client=0, round_=0, defence=make_defence(name))
    assert torch.equal(a, b) and not torch.allclose(a, plain) and torch.isfinite(a).all()
    assert make_defence(name).ledger(3).rounds == 3


SERVER = [n for n in ALL if DEFENCES.get(n).stage == "server"]


@pytest.mark.parametrize("name", SERVER)
def test_a_server_defence_keeps_a_wild_reply_from_dragging_the_aggregate(name):
    honest = torch.randn(4, 10, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    stack = torch.cat([honest, torch.full((1, 10, 1, 8, 8), 1e6)])
    merged = make_defence(name).aggregate(stack, torch.ones(5))
    assert (merged <= honest.max(0).values + 1e-6).all() and (merged >= honest.min(0).values - 1e-6).all()
    assert torch.equal(merged, make_defence(name).aggregate(stack, torch.ones(5)))


ARTIFACT = [n for n in ALL if DEFENCES.get(n).stage == "artifact"]


@pytest.mark.parametrize("name", ARTIFACT)
def test_an_artifact_defence_refuses_a_file_changed_by_one_byte(name, tmp_path):
    from securedd.secure.signing import generate_signing_keys, sign_artifact

    private, public = generate_signing_keys(tmp_path / "sender")
    path = tmp_path / "set.safetensors"
    path.write_bytes(b"distilled bytes")
    sign_artifact(path, private)
    defence = make_defence(name, public_key=str(public))
    defence.check(path)
    path.write_bytes(b"distilled bytez")
    with pytest.raises(ArtifactError):
        defence.check(path)
    with pytest.raises(ConfigError, match="public key"):
        make_defence(name).check(path)
