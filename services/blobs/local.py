"""Blob storage in a local folder: the embedded default, one directory per container.

Blobs live at ``root/<container>/<name>`` (a name's ``/`` makes subdirectories). ``put`` writes
to a file under ``root/.incoming`` and then renames it into place, so a reader sees the old blob
or the whole new one, never half a file, and a refused or failed put leaves nothing behind.
Signed URLs point at the web view that will serve downloads; they carry an HMAC-SHA256 over what
they grant, which that view checks with ``verify_signature``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, urlencode

from events.catalog import BlobRef
from services.blobs.store import (
    CHUNK_SIZE,
    CONTAINERS,
    BlobError,
    BlobItem,
    BlobNotFound,
    Metered,
    Source,
    StorageUnavailable,
    check_container,
    check_name,
)

# Outside every container, so listing never meets a half-written file, and on the same
# filesystem as the containers, so the final os.replace is an atomic rename.
INCOMING = ".incoming"


@contextmanager
def _io(action: str) -> Iterator[None]:
    """Turn OSError into the storage errors callers handle (not-found is handled before this)."""
    try:
        yield
    except (IsADirectoryError, NotADirectoryError, FileExistsError) as exc:
        # Disk cannot hold both ``a`` and ``a/b``; Azure can. Not transient: say so plainly.
        raise BlobError(f"{action}: the name clashes with an existing blob path ({exc})") from exc
    except OSError as exc:
        raise StorageUnavailable(f"{action}: {exc}") from exc


# Raised for a blob that is not there, or whose path is (partly) a directory or a file instead.
_MISSING = (FileNotFoundError, IsADirectoryError, NotADirectoryError)


class LocalBlobStore:
    def __init__(
        self,
        root: Path | str,
        *,
        signing_key: bytes,
        base_url: str = "http://127.0.0.1:8000/blobs",
    ) -> None:
        self.root = Path(root).absolute()
        self._signing_key = signing_key
        self._base_url = base_url.rstrip("/")

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self.root)!r})"

    def _path(self, container: str, name: str) -> Path:
        check_name(container, name)
        return self.root / container / name

    def setup(self) -> None:
        with _io("creating the containers"):
            for container in (*CONTAINERS, INCOMING):
                (self.root / container).mkdir(parents=True, exist_ok=True)

    def put(
        self,
        container: str,
        name: str,
        source: Source,
        *,
        content_type: str,
        max_size: int | None = None,
    ) -> BlobRef:
        target = self._path(container, name)
        meter = Metered(source, max_size)
        incoming = self.root / INCOMING
        action = f"storing {container}/{name}"
        with _io(action):
            incoming.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=incoming, suffix=".part")
        out = os.fdopen(fd, "wb")
        try:
            # The source is read outside _io: its own errors (a client hanging up) are not ours.
            for chunk in meter:
                with _io(action):
                    out.write(chunk)
            with _io(action):
                out.flush()
                # The Uploaded event will vouch for these bytes: make them durable first.
                os.fsync(out.fileno())
                out.close()
                self._install(tmp, target)
        except BaseException:
            with suppress(OSError):
                out.close()
            with suppress(OSError):
                os.unlink(tmp)
            raise
        return meter.ref(container, name, content_type)

    def copy(self, source: BlobRef, container: str, name: str) -> BlobRef:
        """A hard link: no byte is read or written, whatever the size. A blob is never changed
        in place (``put`` renames a new file over its name, ``delete`` unlinks one name), so
        two names may share one file and removing either leaves the other whole."""
        origin = self._path(source.container, source.name)
        target = self._path(container, name)
        action = f"copying {source.container}/{source.name} to {container}/{name}"
        incoming = self.root / INCOMING
        tmp = str(incoming / f"{uuid.uuid4().hex}.link")
        with _io(action):
            incoming.mkdir(parents=True, exist_ok=True)
            try:
                try:
                    os.link(origin, tmp)
                except _MISSING as exc:
                    raise BlobNotFound(f"{source.container}/{source.name}") from exc
                except OSError:  # a filesystem without hard links: the kernel copies instead
                    shutil.copyfile(origin, tmp)
                self._install(tmp, target)
            except BaseException:
                with suppress(OSError):
                    os.unlink(tmp)
                raise
        return source.model_copy(update={"container": container, "name": name})

    @staticmethod
    def _install(tmp: str, target: Path) -> None:
        # A concurrent delete prunes empty directories; if it pruned ours in between, redo it.
        for attempt in range(3):
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(tmp, target)
                return
            except FileNotFoundError:
                if attempt == 2:
                    raise

    def get(self, container: str, name: str, *, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        path = self._path(container, name)
        # Open now, so a missing blob raises here rather than at the first next(); reading the
        # open file also keeps a download whole if the blob is replaced meanwhile.
        try:
            handle = open(path, "rb")  # noqa: SIM115 - the generator below closes it
        except _MISSING as exc:
            raise BlobNotFound(f"{container}/{name}") from exc
        except OSError as exc:
            raise StorageUnavailable(f"reading {container}/{name}: {exc}") from exc
        return self._read(handle, f"{container}/{name}", chunk_size)

    @staticmethod
    def _read(handle: BinaryIO, what: str, chunk_size: int) -> Iterator[bytes]:
        with handle:
            while True:
                with _io(f"reading {what}"):
                    chunk = handle.read(chunk_size)
                if not chunk:
                    return
                yield chunk

    def delete(self, container: str, name: str) -> bool:
        path = self._path(container, name)
        with _io(f"deleting {container}/{name}"):
            try:
                path.unlink()
            except _MISSING:
                return False
        self._prune(path.parent, self.root / container)
        return True

    @staticmethod
    def _prune(directory: Path, stop: Path) -> None:
        # Without this every execution would leave an empty <uuid>/ directory behind forever.
        # Best effort: a directory that is not empty (or already gone) simply stays (or is gone).
        while directory != stop:
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent

    def exists(self, container: str, name: str) -> bool:
        return self._path(container, name).is_file()

    def list(self, container: str, *, prefix: str = "") -> Iterator[BlobItem]:
        check_container(container)
        top = self.root / container
        # Start at the prefix's directory when it names one, instead of walking the container.
        start, rel = top, ""
        if "/" in prefix:
            head = prefix.rsplit("/", 1)[0]
            with suppress(ValueError):
                check_name(container, head)
                start, rel = top / head, head + "/"
        return self._walk(container, start, rel, prefix)

    def _walk(self, container: str, directory: Path, rel: str, prefix: str) -> Iterator[BlobItem]:
        try:
            entries = list(os.scandir(directory))
        except _MISSING:
            return  # nothing stored under this directory
        except OSError as exc:
            raise StorageUnavailable(f"listing {container}: {exc}") from exc
        for entry in entries:
            name = rel + entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    if name.startswith(prefix) or prefix.startswith(name + "/"):
                        yield from self._walk(container, Path(entry.path), name + "/", prefix)
                elif name.startswith(prefix):
                    stat = entry.stat()
                    modified = datetime.fromtimestamp(stat.st_mtime, UTC)
                    yield BlobItem(container, name, stat.st_size, modified)
            except FileNotFoundError:
                continue  # deleted while we listed

    # -- signed URLs -------------------------------------------------------------------------

    def _signature(self, container: str, name: str, expires: int, filename: str | None) -> str:
        if not self._signing_key:
            raise ValueError("LocalBlobStore needs a signing_key to sign URLs")
        # JSON keeps the fields apart whatever they contain, so no two grants sign alike.
        message = json.dumps([container, name, expires, filename]).encode()
        return hmac.new(self._signing_key, message, hashlib.sha256).hexdigest()

    def signed_url(
        self,
        container: str,
        name: str,
        *,
        expires_in: timedelta,
        filename: str | None = None,
    ) -> str:
        check_name(container, name)
        if expires_in <= timedelta(0):
            raise ValueError("expires_in must be positive")
        expires = math.ceil(time.time() + expires_in.total_seconds())
        query = {"expires": str(expires)}
        if filename is not None:
            query["filename"] = filename
        query["sig"] = self._signature(container, name, expires, filename)
        return f"{self._base_url}/{container}/{quote(name, safe='/')}?{urlencode(query)}"

    def verify_signature(
        self,
        container: str,
        name: str,
        expires: int,
        sig: str,
        filename: str | None,
        now: datetime | None = None,
    ) -> bool:
        """True if ``sig`` is this store's signature for these fields and ``expires`` is ahead."""
        if not self._signing_key:
            return False
        try:
            check_name(container, name)
        except ValueError:
            return False
        current = (now or datetime.now(UTC)).timestamp()
        if current >= expires:
            return False
        expected = self._signature(container, name, expires, filename)
        return hmac.compare_digest(expected.encode(), sig.encode("utf-8", "replace"))
