"""The hashed-manifest store: atomic files, a manifest of SHA-256s, every read verified."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from securedd import store
from securedd.errors import ArtifactError, ConfigError
from securedd.store import HashedStore, atomic_write_bytes, check_output, describe_os_error, sha256_hex


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


def _no_temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("failing", ["fsync", "replace", "write"])
def test_a_failing_write_leaves_the_old_file_and_no_temporary(tmp_path: Path, monkeypatch, failing):
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"old")

    def boom(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    if failing == "write":  # the disk fills up half-way: the file object's write fails
        real_fdopen = os.fdopen

        class Full:
            def __init__(self, fd, mode):
                self.fh = real_fdopen(fd, mode)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.fh.close()

            write = boom

        monkeypatch.setattr(os, "fdopen", Full)
    else:
        monkeypatch.setattr(os, failing, boom)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_bytes(path, b"new")
    monkeypatch.undo()
    assert path.read_bytes() == b"old" and _no_temporaries(tmp_path) == [] and len(list(tmp_path.iterdir())) == 1


def test_a_ctrl_c_during_the_write_leaves_no_temporary(tmp_path: Path, monkeypatch):
    def interrupt(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(tmp_path / "f.bin", b"data")
    assert list(tmp_path.iterdir()) == []


def test_the_temporary_is_created_exclusively_and_never_through_a_planted_link(tmp_path: Path, monkeypatch):
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    names = iter(["planted", "fresh"])
    monkeypatch.setattr(store.secrets, "token_hex", lambda n: next(names))
    (tmp_path / ".f.bin.planted.tmp").symlink_to(victim)  # an attacker's guess of the temporary's name
    atomic_write_bytes(tmp_path / "f.bin", b"mine")
    assert victim.read_bytes() == b"precious" and (tmp_path / "f.bin").read_bytes() == b"mine"
    assert not (tmp_path / ".f.bin.fresh.tmp").exists()


def test_private_files_are_owner_only_from_their_first_byte(tmp_path: Path, monkeypatch):
    modes = []
    fsync = os.fsync

    def spy(fd):
        modes.append(stat.S_IMODE(os.fstat(fd).st_mode))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    path = tmp_path / "secret.key"
    path.write_bytes(b"old")
    path.chmod(0o644)
    atomic_write_bytes(path, b"secret", private=True)
    assert modes[0] == 0o600 and stat.S_IMODE(path.stat().st_mode) == 0o600
    atomic_write_bytes(tmp_path / "public.txt", b"hello")
    assert stat.S_IMODE((tmp_path / "public.txt").stat().st_mode) & 0o044  # ordinary files keep the umask's mode


def test_check_output_refuses_what_cannot_be_written_and_creates_nothing(tmp_path: Path, monkeypatch):
    assert check_output(tmp_path / "a" / "b" / "out.bin") == tmp_path / "a" / "b" / "out.bin"
    assert not (tmp_path / "a").exists()
    with pytest.raises(ConfigError, match=r"--out .* is a folder: give a file name"):
        check_output(tmp_path, what="--out")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"file is a file, so no folder can be made there"):
        check_output(tmp_path / "file" / "sub" / "out.bin", what="--json")
    with pytest.raises(ConfigError, match=r"--out-dir .*file is a file, not a folder"):
        check_output(tmp_path / "file", what="--out-dir", folder=True)
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="broken symbolic link"):
        check_output(tmp_path / "dangling")
    monkeypatch.setattr(store.os, "access", lambda path, mode: False)
    with pytest.raises(ConfigError, match=r"the folder .* is not writable"):
        check_output(tmp_path / "out.bin")


def test_check_output_refuses_a_disk_without_the_space(tmp_path: Path, monkeypatch):
    assert check_output(tmp_path / "out.bin", need_bytes=1000)
    monkeypatch.setattr(store.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 500, 500))
    with pytest.raises(ConfigError, match=r"about 1000 B will be written and .* has 500 B free"):
        check_output(tmp_path / "out.bin", what="--out", need_bytes=1000)


def test_os_errors_read_as_one_line_with_a_fix():
    full = describe_os_error(OSError(errno.ENOSPC, "No space left on device", "/data/x.bin"))
    assert full == "/data/x.bin: No space left on device (the disk is full: free some space or write to another disk)"
    assert "permission denied" in describe_os_error(PermissionError(errno.EACCES, "Permission denied", "/x"))
    assert "give a file name" in describe_os_error(IsADirectoryError(errno.EISDIR, "Is a directory", "/x"))
    assert describe_os_error(OSError("odd")) == "odd"
