"""The registry's content-addressed blob store and its upload sessions, on disk.

Layout under ``<data_dir>/registry`` (the layout of the reference implementation,
distribution/distribution's filesystem driver, flattened):

* ``blobs/sha256/<first two hex>/<hex>``: a committed blob, named by the sha256 of its bytes;
* ``uploads/<uuid>/data``: the bytes an upload session has received so far, and
  ``uploads/<uuid>/owner``: whose session it is (the registry's repository key), so that a
  session survives a daemon restart and nobody else's repository can finish or read it.

A blob is never held in memory: uploads are appended to ``data`` chunk by chunk while a
sha256 runs over them; committing verifies that digest, ``fsync``s the file and renames it into
place (``rename(2)`` is atomic within one file system, so a reader sees the whole blob or none;
the blob directory is fsynced too, so the name survives a crash). After a restart the running
hash is gone, and the commit re-reads the file to hash it.

Garbage collection (:meth:`BlobStore.collect`) deletes blobs nobody references and upload
sessions nobody touched for :data:`UPLOAD_MAX_AGE`; a blob younger than the grace period is
kept even when unreferenced: it is the layer of an image whose manifest is not pushed yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

__all__ = [
    "BlobStore",
    "DigestMismatch",
    "UploadOffsetError",
    "UploadSizeError",
    "UploadUnknown",
    "parse_digest",
    "upload_owner_key",
]

#: ``<algorithm>:<hex>``; the store (like ECR, whose LayerDigest pattern is
#: ``[a-zA-Z0-9-_+.]+:[a-fA-F0-9]+`` but which computes sha256 only) keeps sha256 blobs.
_SHA256 = re.compile(r"^sha256:([a-f0-9]{64})$")
#: An upload id as :meth:`BlobStore.start_upload` makes them (uuid4, lower case).
_UPLOAD_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
#: Sessions nobody touched for this long are collected (distribution's
#: ``maintenance.uploadpurging.age`` default, 168 h).
UPLOAD_MAX_AGE = 7 * 24 * 3600.0
#: An unreferenced blob younger than this is kept by :meth:`BlobStore.collect`: docker pushes
#: every layer before the manifest that references them.
BLOB_GRACE = 3600.0
_COPY = 1 << 20


class UploadUnknown(Exception):
    """No such upload session (never started, finished, cancelled or collected)."""


class UploadOffsetError(Exception):
    """A chunk that does not start where the session's bytes end."""

    def __init__(self, size: int) -> None:
        super().__init__(f"the upload has {size} bytes")
        self.size = size


class UploadSizeError(Exception):
    """A chunk whose length is not the one its request announced (the chunk is undone)."""

    def __init__(self, size: int) -> None:
        super().__init__(f"the upload has {size} bytes")
        self.size = size


class DigestMismatch(Exception):
    """The bytes uploaded do not hash to the digest the client named."""

    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(f"expected {expected}, the content is {actual}")
        self.expected = expected
        self.actual = actual


def parse_digest(digest: str) -> str | None:
    """The hex of a sha256 digest, or None when ``digest`` is not one."""
    m = _SHA256.match(digest)
    return m.group(1) if m else None


def upload_owner_key(account: str, region: str, repository: str) -> str:
    """Whose an upload session is: one repository of one account and region. The one
    spelling both the /v2 routes and ECR's layer operations use, so that a session begun on
    either side is finished on the other and on no other repository."""
    return f"{account}/{region}/{repository}"


class _Running:
    """A session's sha256 over its first ``size`` bytes (lost on restart: then re-read)."""

    def __init__(self) -> None:
        self.hash = hashlib.sha256()
        self.size = 0


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs" / "sha256"
        self.uploads = root / "uploads"
        for directory in (self.blobs, self.uploads):
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._running: dict[str, _Running] = {}
        # commit and collect run in worker threads (fsync, directory walks): one lock keeps a
        # collect from deleting a blob between a commit's rename and its caller's link_blob.
        self._lock = threading.Lock()
        # One asyncio lock per live session (event loop only), for every request that reads
        # or changes it, from the /v2 routes and ECR's layer operations alike: two PATCHes or
        # two completions of one session never interleave. Made only for a session that
        # exists, dropped when it goes (abort, commit, collect).
        self._session_locks: dict[str, asyncio.Lock] = {}

    # -- committed blobs -------------------------------------------------------------------

    def _blob_path(self, digest: str) -> Path | None:
        hex_ = parse_digest(digest)
        if hex_ is None:
            return None
        return self.blobs / hex_[:2] / hex_

    def path(self, digest: str) -> Path | None:
        """The committed blob's file, or None (no such blob, or not a sha256 digest)."""
        path = self._blob_path(digest)
        return path if path is not None and path.is_file() else None

    def size(self, digest: str) -> int | None:
        path = self._blob_path(digest)
        if path is None:
            return None
        try:
            return path.stat().st_size
        except FileNotFoundError:
            return None

    # -- upload sessions --------------------------------------------------------------------

    def _session(self, upload_id: str) -> Path:
        if not _UPLOAD_ID.match(upload_id):
            raise UploadUnknown(upload_id)
        return self.uploads / upload_id

    def start_upload(self, owner: str = "") -> str:
        """A new session; ``owner`` (the registry's repository key) is kept beside it."""
        upload_id = str(uuid.uuid4())
        session = self.uploads / upload_id
        session.mkdir(mode=0o700)
        (session / "owner").write_text(owner)
        (session / "data").touch(mode=0o600)
        self._running[upload_id] = _Running()
        return upload_id

    def _owned_size(self, upload_id: str, owner: str) -> int:
        size = self.upload_size(upload_id)
        if size is None or self.upload_owner(upload_id) != owner:
            raise UploadUnknown(upload_id)
        return size

    @contextlib.asynccontextmanager
    async def hold_upload(self, upload_id: str, owner: str) -> AsyncIterator[int]:
        """Hold the session (call from the event loop): yields the bytes it holds, checked
        again once the lock is held (a completion that went first leaves nothing);
        :class:`UploadUnknown` when it is not ``owner``'s session, before any lock is made."""
        self._owned_size(upload_id, owner)
        lock = self._session_locks.setdefault(upload_id, asyncio.Lock())
        async with lock:
            yield self._owned_size(upload_id, owner)

    @property
    def session_locks(self) -> int:
        """How many session locks exist (each for a live session)."""
        return len(self._session_locks)

    def upload_owner(self, upload_id: str) -> str | None:
        try:
            return (self._session(upload_id) / "owner").read_text()
        except (UploadUnknown, FileNotFoundError, NotADirectoryError):
            return None

    def upload_size(self, upload_id: str) -> int | None:
        """The bytes received so far; None for an unknown session."""
        try:
            return (self._session(upload_id) / "data").stat().st_size
        except (UploadUnknown, FileNotFoundError, NotADirectoryError):
            return None

    def _data(self, upload_id: str) -> Path:
        data = self._session(upload_id) / "data"
        if not data.is_file():
            raise UploadUnknown(upload_id)
        return data

    def _hashed(self, upload_id: str, size: int) -> _Running | None:
        """The running hash if it covers exactly the session's bytes (else it is dropped)."""
        running = self._running.get(upload_id)
        if running is not None and running.size != size:
            del self._running[upload_id]
            return None
        return running

    def append(self, upload_id: str, data: bytes, offset: int | None = None) -> int:
        """Append ``data``; ``offset``, when given, must be the session's size. The new size."""
        path = self._data(upload_id)
        with open(path, "ab") as f:
            size = f.tell()
            if offset is not None and offset != size:
                raise UploadOffsetError(size)
            running = self._hashed(upload_id, size)
            f.write(data)
            if running is not None:
                running.hash.update(data)
                running.size += len(data)
            return size + len(data)

    async def append_stream(
        self,
        upload_id: str,
        chunks: AsyncIterator[bytes],
        offset: int | None = None,
        length: int | None = None,
    ) -> int:
        """Append what ``chunks`` yields, one chunk at a time; the new size.

        ``offset``: where the chunk claims to start (else :class:`UploadOffsetError`, nothing
        read); ``length``: how long it claims to be — a stream that ends shorter or runs
        longer is undone (the file cut back) and :class:`UploadSizeError` raised. A stream
        that fails midway (the client went away) is undone too, so a retry starts clean."""
        path = self._data(upload_id)
        with open(path, "ab") as f:
            start = f.tell()
            if offset is not None and offset != start:
                raise UploadOffsetError(start)
            running = self._hashed(upload_id, start)
            written = 0
            try:
                async for chunk in chunks:
                    written += len(chunk)
                    if length is not None and written > length:
                        raise UploadSizeError(start)
                    f.write(chunk)
                    if running is not None:
                        running.hash.update(chunk)
                if length is not None and written != length:
                    raise UploadSizeError(start)
            except BaseException:
                f.flush()
                f.truncate(start)
                if running is not None:
                    del self._running[upload_id]  # it saw bytes that are gone again
                raise
            if running is not None:
                running.size += written
            return start + written

    def commit(self, upload_id: str, digest: str) -> int:
        """Verify the session's bytes hash to ``digest``, fsync, rename into place; the size.

        The session is gone afterwards whether or not the blob existed already (then the
        upload is simply dropped: the content is the same). On :class:`DigestMismatch` the
        session is kept, as the client may still cancel it; its bytes are not a blob."""
        target = self._blob_path(digest)
        if target is None:
            raise DigestMismatch(digest, "not a sha256 digest")
        path = self._data(upload_id)
        with open(path, "rb+") as f:
            size = os.fstat(f.fileno()).st_size
            running = self._hashed(upload_id, size)
            if running is None:
                running = _Running()
                while block := f.read(_COPY):
                    running.hash.update(block)
                running.size = size
            actual = "sha256:" + running.hash.hexdigest()
            if actual != digest:
                raise DigestMismatch(digest, actual)
            os.fsync(f.fileno())
        with self._lock:
            target.parent.mkdir(exist_ok=True, mode=0o700)
            if not target.exists():
                os.rename(path, target)
                _fsync_dir(target.parent)
            # The grace period starts now, not at the session's last write (a session idle
            # for an hour before its PUT), nor at the first push of a blob pushed again: the
            # caller links the blob to its repository only after this returns.
            os.utime(target)
        self.abort(upload_id)
        return size

    def abort(self, upload_id: str) -> None:
        """Forget the session and its bytes (unknown sessions: nothing to do)."""
        self._running.pop(upload_id, None)
        self._session_locks.pop(upload_id, None)
        try:
            session = self._session(upload_id)
        except UploadUnknown:
            return
        shutil.rmtree(session, ignore_errors=True)

    def abort_owned(self, owner: str) -> int:
        """Abort every session of ``owner`` (its repository was deleted: a repository made
        again under the name must not commit the old one's bytes); how many."""
        aborted = 0
        for session in list(self.uploads.iterdir()):
            if self.upload_owner(session.name) == owner:
                self.abort(session.name)
                aborted += 1
        return aborted

    # -- garbage collection ----------------------------------------------------------------

    def collect(
        self,
        live: set[str],
        *,
        grace: float = BLOB_GRACE,
        upload_max_age: float = UPLOAD_MAX_AGE,
        now: float | None = None,
    ) -> int:
        """Delete the blobs not in ``live`` (unless younger than ``grace`` seconds) and the
        sessions untouched for ``upload_max_age``; how many of both were deleted.

        Ages are file mtimes against the wall clock (``now``): a warped task clock says
        nothing about when a file was written."""
        now = time.time() if now is None else now
        deleted = 0
        with self._lock:
            for prefix in list(self.blobs.iterdir()):
                if not prefix.is_dir():
                    continue
                for blob in list(prefix.iterdir()):
                    if f"sha256:{blob.name}" in live:
                        continue
                    try:
                        if now - blob.stat().st_mtime < grace:
                            continue
                        blob.unlink()
                    except FileNotFoundError:
                        continue
                    deleted += 1
        for session in list(self.uploads.iterdir()):
            try:
                touched = max(p.stat().st_mtime for p in [session, *session.iterdir()])
            except (FileNotFoundError, NotADirectoryError):
                continue
            if now - touched >= upload_max_age:
                self.abort(session.name)
                deleted += 1
        return deleted


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
