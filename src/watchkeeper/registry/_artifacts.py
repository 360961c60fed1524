"""Content-addressed artifact storage on the local disk or any fsspec URL.

An artifact's path is derived only from its sha256 (never from a model name), so a name can
never steer a write outside the store, and identical bytes are stored once.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from watchkeeper._extras import require
from watchkeeper.exceptions import InputError
from watchkeeper.registry._errors import ArtifactIntegrityError, RegistryUnavailableError

__all__ = ["ArtifactStore", "sha256_hex"]

_HEX64 = re.compile(r"[0-9a-f]{64}")


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of ``data``.

    Examples
    --------
    >>> sha256_hex(b"abc")[:16]
    'ba7816bf8f01cfea'
    """
    return hashlib.sha256(data).hexdigest()


class ArtifactStore:
    """Bytes stored under ``<location>/sha256/<first two hex>/<sha256>``.

    Parameters
    ----------
    location
        A local folder, or an fsspec URL such as ``s3://bucket/prefix`` (needs the
        ``storage`` extra and the file system's own package, e.g. ``s3fs``).

    Examples
    --------
    >>> import tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> store = ArtifactStore(tmp.name)
    >>> digest = store.put(b"model bytes")
    >>> store.get(digest)
    b'model bytes'
    >>> tmp.cleanup()
    """

    def __init__(self, location: str | Path) -> None:
        text = str(location)
        self.location = text
        self._fs: Any = None
        if "://" in text and not text.startswith("file://"):
            fsspec = require("fsspec", extra="storage", purpose=f"Artifacts at {text}")
            try:
                self._fs, self._root = fsspec.core.url_to_fs(text)
            except (ImportError, ValueError) as exc:
                raise InputError(
                    f"cannot open artifact location {text!r}: {exc}. Install the file "
                    "system's package (e.g. s3fs, gcsfs) or use a local folder"
                ) from exc
            self._root = str(self._root).rstrip("/")
        else:
            self._root = text.removeprefix("file://")

    def _path(self, digest: str) -> str:
        if not _HEX64.fullmatch(digest):
            raise ArtifactIntegrityError(f"invalid artifact address {digest!r}: not a sha256")
        return f"{self._root}/sha256/{digest[:2]}/{digest}"

    def put(self, data: bytes) -> str:
        """Store ``data`` (idempotent) and return its sha256.

        An existing copy is re-verified and replaced if it was corrupted, so registering the
        same model again repairs a damaged artifact instead of trusting it.
        """
        digest = sha256_hex(data)
        path = self._path(digest)
        try:
            if self._fs is not None:
                if not (self._fs.exists(path) and sha256_hex(self._fs.cat_file(path)) == digest):
                    self._fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
                    self._fs.pipe_file(path, data)
                return digest
            target = Path(path)
            if target.exists() and sha256_hex(target.read_bytes()) == digest:
                return digest
            target.parent.mkdir(parents=True, exist_ok=True)
            # Write-then-rename: a reader never sees half an artifact, even after a crash.
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise RegistryUnavailableError(
                f"cannot write artifacts to {self.location!r}: {exc}. Check the folder exists "
                "and is writable (or the storage URL and credentials)"
            ) from exc
        return digest

    def get(self, digest: str, *, what: str = "artifact") -> bytes:
        """The bytes stored under ``digest``, verified against it.

        Raises
        ------
        ArtifactIntegrityError
            When the file is missing or its content no longer has this sha256.
        """
        path = self._path(digest)
        try:
            data = self._fs.cat_file(path) if self._fs is not None else Path(path).read_bytes()
        except FileNotFoundError as exc:
            raise ArtifactIntegrityError(
                f"{what} is missing: no file {path}; restore it from a backup or register the "
                "model again"
            ) from exc
        except OSError as exc:
            raise RegistryUnavailableError(f"cannot read {what} at {path}: {exc}") from exc
        found = sha256_hex(data)
        if found != digest:
            raise ArtifactIntegrityError(
                f"{what} is corrupted: {path} has sha256 {found[:12]}... but {digest[:12]}... "
                "was registered. It was modified or damaged after registration; do not use it. "
                "Restore the file from a backup or register the model again"
            )
        return data

    def delete(self, digest: str) -> None:
        """Remove the artifact ``digest`` if present."""
        path = self._path(digest)
        try:
            if self._fs is not None:
                if self._fs.exists(path):
                    self._fs.rm_file(path)
            else:
                Path(path).unlink(missing_ok=True)
        except OSError as exc:
            raise RegistryUnavailableError(f"cannot delete artifact {path}: {exc}") from exc

    def locate(self, digest: str) -> str:
        """Path or URL where ``digest`` is stored (for inspection and repair)."""
        path = self._path(digest)
        return path if self._fs is None else self._fs.unstrip_protocol(path)
