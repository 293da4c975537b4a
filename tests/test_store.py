"""The hashed-manifest store: atomic files, a manifest of SHA-256s, every read verified."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from securedd.errors import ArtifactError
from securedd.store import HashedStore, atomic_write_bytes, sha256_hex


def _store(folder: Path) -> HashedStore:
    return HashedStore(folder, "manifest.json", format_fields={"format": "test", "version": 1}, what="test file",
                       fix="rerun the maker with the same folder", remake="delete the folder and start again")


@pytest.fixture
def filled(tmp_path: Path) -> tuple[HashedStore, dict]:
    store = _store(tmp_path / "s")
    files = {name: store.write_file(name, data) for name, data in (("a.bin", b"alpha"), ("b.bin", b"beta"))}
    manifest = {"format": "test", "version": 1, "files": files}
    store.write_manifest(manifest)
    return store, manifest


def test_files_and_manifest_round_trip(filled):
    store, manifest = filled
    assert store.read_manifest() == manifest
    assert store.read_file("a.bin", manifest["files"]["a.bin"]) == b"alpha"
    assert manifest["files"]["b.bin"] == sha256_hex(b"beta")
    assert store.manifest_path.read_text().endswith("}\n")
    assert sorted(p.name for p in store.folder.iterdir()) == ["a.bin", "b.bin", "manifest.json"]  # no temporary left


def test_a_tampered_file_is_refused_naming_it_and_the_fix(filled):
    store, manifest = filled
    store.path("a.bin").write_bytes(b"alphA")
    with pytest.raises(ArtifactError, match=r"a\.bin: test file is corrupted or was changed \(SHA-256 mismatch.*"
                                            r"delete this file and rerun the maker"):
        store.read_file("a.bin", manifest["files"]["a.bin"])


def test_a_missing_file_is_refused(filled):
    store, manifest = filled
    store.path("b.bin").unlink()
    with pytest.raises(ArtifactError, match=r"b\.bin: test file is missing \(listed in manifest\.json\); rerun"):
        store.read_file("b.bin", manifest["files"]["b.bin"])


def test_a_manifest_that_does_not_match_is_refused(filled):
    store, manifest = filled
    with pytest.raises(ArtifactError, match=r"c\.bin: manifest\.json does not list this test file"):
        store.read_file("c.bin", manifest["files"].get("c.bin"))
    edited = {**manifest, "files": {**manifest["files"], "a.bin": sha256_hex(b"something else")}}
    store.manifest_path.write_text(json.dumps(edited))
    with pytest.raises(ArtifactError, match="SHA-256 mismatch"):
        store.read_file("a.bin", store.read_manifest()["files"]["a.bin"])
    store.manifest_path.write_text(json.dumps({**manifest, "version": 2}))
    with pytest.raises(ArtifactError, match=r"not a manifest of this kind \(expected format 'test', version 1; "
                                            r"found version 2\); delete the folder"):
        store.read_manifest()
    store.manifest_path.write_text("{not json")
    with pytest.raises(ArtifactError, match="manifest is unreadable"):
        store.read_manifest()
    store.manifest_path.write_text("[1, 2]")
    with pytest.raises(ArtifactError, match="not a JSON object"):
        store.read_manifest()


def test_no_manifest_reads_as_none(tmp_path: Path):
    assert _store(tmp_path / "empty").read_manifest() is None


def test_atomic_write_replaces_whole_files(tmp_path: Path):
    path = tmp_path / "deep" / "f.txt"
    atomic_write_bytes(path, b"one")
    atomic_write_bytes(path, b"two")
    assert path.read_bytes() == b"two" and [p.name for p in path.parent.iterdir()] == ["f.txt"]
