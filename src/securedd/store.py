"""Files on disk: atomic writes, and folders of files whose SHA-256 a manifest records.

:func:`atomic_write_bytes` writes a file so that a reader sees the old file or the whole
new one, never a part, through a temporary file created exclusively and removed on any
error; :func:`check_output` checks an output path before any work (not a folder, its
folder writable, enough free space); :func:`describe_os_error` turns an operating-system
error into the one line the command line prints. :class:`HashedStore` is a folder of files plus a JSON manifest
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

import contextlib
import errno
import hashlib
import json
import logging
import os
import secrets
import shutil
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from securedd.errors import ArtifactError, ConfigError

__all__ = ["HashedStore", "atomic_write_bytes", "check_output", "describe_os_error", "sha256_hex", "warn_if_exposed"]

log = logging.getLogger(__name__)


def atomic_write_bytes(path: str | Path, data: bytes, *, private: bool = False) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one.

    The bytes go to a temporary file beside ``path``, created exclusively (``O_EXCL``, never
    following a symbolic link) and removed on every error path, then renamed over ``path``.
    ``private``: the file is readable and writable by its owner only (mode 0600) from its
    first byte, for secrets such as keys.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _exclusive_temp(path, 0o600 if private else 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:  # some filesystems cannot fsync a directory
        pass


_TEMP_FLAGS = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
               | getattr(os, "O_BINARY", 0))


def _exclusive_temp(path: Path, mode: int) -> tuple[int, Path]:
    """A new temporary file beside ``path``: (open descriptor, its path); never an existing file or link."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name[:200]}.{secrets.token_hex(8)}.tmp")
        try:
            return os.open(tmp, _TEMP_FLAGS, mode), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "could not create a unique temporary file", str(path.parent))


def check_output(path: str | Path, *, what: str = "output", need_bytes: int = 0, folder: bool = False) -> Path:
    """Check, before any work, that ``path`` can be written; return it.

    ``path`` must not be a folder (for ``folder=True``: must not be a file), the folders
    above it must exist or be creatable (no file stands in their way) and the nearest
    existing one must be writable; with ``need_bytes``, the disk must have that much free
    space (as far as :func:`shutil.disk_usage` can tell). Nothing is created.

    Args:
        path: the file (or, with ``folder``, the folder) that will be written.
        what: how the user named it, for messages ("--out", "--json", "the checkpoint").
        need_bytes: an estimate of the bytes that will be written (0: not checked).
        folder: ``path`` is a folder that will hold the outputs.

    Raises:
        ConfigError: naming ``path`` and what is wrong with it.
    """
    path = Path(path)
    if folder:
        if path.exists() and not path.is_dir():
            raise ConfigError(f"{what} {path} is a file, not a folder: choose a folder, or move the file away")
    elif path.is_dir():
        raise ConfigError(f"{what} {path} is a folder: give a file name (e.g. {path / 'out'}...)")
    elif path.is_symlink() and not path.exists():
        raise ConfigError(f"{what} {path} is a broken symbolic link: remove it or choose another path")
    existing = path if folder and path.is_dir() else path.parent
    while not existing.exists():
        if existing.is_symlink():
            raise ConfigError(f"{what} {path}: {existing} is a broken symbolic link; remove it or choose another path")
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{what} {path}: {existing} is a file, so no folder can be made there; choose another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{what} {path}: the folder {existing} is not writable (permission denied or a read-only "
                          "file system); choose a writable location")
    if need_bytes > 0:
        try:
            free = shutil.disk_usage(existing).free
        except OSError:  # no estimate on this file system: the write itself will tell
            return path
        if free < need_bytes:
            raise ConfigError(f"{what} {path}: about {_human(need_bytes)} will be written and {existing} has "
                              f"{_human(free)} free; free some space or choose another disk")
    return path


def _human(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def describe_os_error(exc: OSError) -> str:
    """One line for an operating-system error: what failed, on which file, and what to do."""
    where = f"{exc.filename}" if exc.filename is not None else ""
    if exc.filename2 is not None:
        where += f" -> {exc.filename2}"
    reason = exc.strerror or str(exc) or type(exc).__name__
    hint = {
        errno.ENOSPC: "the disk is full: free some space or write to another disk",
        errno.EDQUOT: "the disk quota is exceeded: free some space or write to another disk",
        errno.EACCES: "permission denied: choose a location you can write to (or read, for inputs)",
        errno.EPERM: "operation not permitted: choose a location you own",
        errno.EROFS: "the file system is read-only: choose another location",
        errno.EISDIR: "a folder stands where a file is expected: give a file name",
        errno.ENOTDIR: "a file stands where a folder is expected: choose another path",
        errno.ENOENT: "no such file or folder: check the path",
        errno.ENAMETOOLONG: "the file name is too long: choose a shorter one",
        errno.ELOOP: "too many symbolic links (a loop?): use the real path",
    }.get(exc.errno if exc.errno is not None else -1, "")
    text = f"{where}: {reason}" if where else reason
    return f"{text} ({hint})" if hint else text


def warn_if_exposed(path: Path, what: str) -> None:
    """Log a warning when users other than the owner may read or write the secret file ``path``."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return
    if os.name == "posix" and mode & 0o077:
        log.warning("%s %s is readable or writable by others (mode %o): anyone who reads it can use it; "
                    "make it owner-only with `chmod 600 %s`", what, path, mode, path)


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
