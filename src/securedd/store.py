"""Files on disk: atomic writes, and folders of files whose SHA-256 a manifest records.

:func:`atomic_write_bytes` writes a file so that a reader sees the old file or the whole
new one, never a part. :class:`HashedStore` is a folder of files plus a JSON manifest
that records each file's SHA-256: files and manifest are written atomically, the manifest
names its format (checked on read) and every file is checked against its recorded hash
when it is read, with an :class:`~securedd.errors.ArtifactError` that names the file and
says how to mend it. Expert trajectories and network pools are such folders.

Example:
    >>> import tempfile
    >>> store = HashedStore(tempfile.mkdtemp(), "manifest.json", format_fields={"format": "demo"}, what="demo file")
    >>> digest = store.write_file("a.bin", b"hello")
    >>> store.write_manifest({"format": "demo", "files": {"a.bin": digest}})
    >>> store.read_file("a.bin", store.read_manifest()["files"].get("a.bin"))
    b'hello'
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from securedd.errors import ArtifactError

__all__ = ["HashedStore", "atomic_write_bytes", "sha256_hex"]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    try:
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:  # some filesystems cannot fsync a directory
        pass


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of ``data`` as 64 hex digits."""
    return hashlib.sha256(data).hexdigest()


class HashedStore:
    """A folder of files and one JSON manifest recording each file's SHA-256.

    Where the manifest keeps the hashes is the owner's choice (a table of shards, a list
    of entries...); the store writes files and manifest atomically, checks the manifest's
    format on read and checks every file against the hash it is given.

    Args:
        folder: the folder (created on the first write).
        manifest: the manifest's file name inside ``folder``.
        format_fields: keys and values every manifest of this kind carries (e.g.
            ``{"format": "securedd-experts", "version": 1}``); a manifest with other
            values is refused.
        what: what the files are, for messages ("expert file").
        fix: how to make a missing, changed or unlisted file again (the end of a sentence:
            "rerun `securedd experts` with the same --out to retrain it").
        remake: how to make the whole folder again when its manifest is unusable.
    """

    def __init__(self, folder: str | Path, manifest: str, *, format_fields: Mapping[str, Any], what: str = "file",
                 fix: str = "make it again", remake: str = "delete the folder and make it again") -> None:
        self.folder = Path(folder)
        self.manifest_name = manifest
        self.format_fields = dict(format_fields)
        self.what = what
        self.fix = fix
        self.remake = remake

    @property
    def manifest_path(self) -> Path:
        """The manifest file."""
        return self.folder / self.manifest_name

    def path(self, name: str) -> Path:
        """The path of the stored file ``name``."""
        return self.folder / name

    def read_manifest(self) -> dict[str, Any] | None:
        """The manifest, or ``None`` when the folder has none.

        Raises:
            ArtifactError: the manifest is unreadable, not a JSON object, or of another format.
        """
        path = self.manifest_path
        if not path.is_file():
            return None
        try:
            manifest = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ArtifactError(f"{path}: the manifest is unreadable ({exc}); {self.remake}") from None
        if not isinstance(manifest, dict):
            raise ArtifactError(f"{path}: the manifest is not a JSON object; {self.remake}")
        wrong = {k: manifest.get(k) for k, v in self.format_fields.items() if manifest.get(k) != v}
        if wrong:
            expected = ", ".join(f"{k} {v!r}" for k, v in self.format_fields.items())
            found = ", ".join(f"{k} {v!r}" for k, v in wrong.items())
            raise ArtifactError(f"{path}: not a manifest of this kind (expected {expected}; found {found}); {self.remake}")
        return manifest

    def write_manifest(self, manifest: Mapping[str, Any]) -> None:
        """Write ``manifest`` atomically (indented JSON, keys sorted, a final newline)."""
        atomic_write_bytes(self.manifest_path, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())

    def write_file(self, name: str, data: bytes) -> str:
        """Write ``data`` as file ``name`` atomically; returns its SHA-256 for the manifest."""
        atomic_write_bytes(self.path(name), data)
        return sha256_hex(data)

    def read_file(self, name: str, expected: str | None) -> bytes:
        """The bytes of file ``name``, checked against ``expected``, the SHA-256 its manifest records.

        Raises:
            ArtifactError: the manifest records no hash for the file (``expected`` is
                ``None``), the file is missing, or its bytes do not match the hash.
        """
        path = self.path(name)
        if expected is None:
            raise ArtifactError(f"{path}: {self.manifest_name} does not list this {self.what}; {self.fix}")
        if not path.is_file():
            raise ArtifactError(f"{path}: {self.what} is missing (listed in {self.manifest_name}); {self.fix}")
        data = path.read_bytes()
        actual = sha256_hex(data)
        if actual != expected:
            raise ArtifactError(
                f"{path}: {self.what} is corrupted or was changed (SHA-256 mismatch: the file's is {actual[:16]}..., "
                f"{self.manifest_name} records {str(expected)[:16]}...): delete this file and {self.fix}"
            )
        return data
