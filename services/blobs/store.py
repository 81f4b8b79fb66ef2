"""Blob storage: one interface for the files executions read and write, on local disk or Azure.

Containers are ``uploads`` (inputs, kept 7 days), ``processed`` (outputs, 30 days) and ``temp``
(scratch, 24 hours). ``put`` streams: it reads its source chunk by chunk, hashing and counting as
it goes, so a 500 MB upload never sits in memory; it refuses (and leaves nothing behind) once the
source passes ``max_size``. Every backend passes the same contract suite
(``tests/services/blobs/test_contract.py``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import BinaryIO, Protocol, cast

from events.catalog import BlobRef

CONTAINERS = ("uploads", "processed", "temp")
CHUNK_SIZE = 1024 * 1024

# What ``put`` reads from: an iterable of byte chunks, or a binary file object read in chunks.
Source = Iterable[bytes] | BinaryIO


class BlobError(Exception):
    """Base of blob storage errors: a stable ``code``; ``retryable`` if trying again may help."""

    code = "storage_error"
    retryable = False


class BlobNotFound(BlobError):
    code = "blob_not_found"


class BlobTooLarge(BlobError):
    code = "file_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"the file is larger than the {limit:,}-byte limit")
        self.limit = limit


class StorageUnavailable(BlobError):
    """A transient failure of the backend (network, throttling, a 5xx): worth retrying."""

    code = "storage_unavailable"
    retryable = True


@dataclass(frozen=True, slots=True)
class BlobItem:
    container: str
    name: str
    size: int
    modified: datetime  # aware UTC


class BlobStore(Protocol):
    def setup(self) -> None:
        """Create the containers if missing (idempotent)."""

    def put(
        self,
        container: str,
        name: str,
        source: Source,
        *,
        content_type: str,
        max_size: int | None = None,
    ) -> BlobRef:
        """Store ``source`` as ``container/name`` (replacing it), hashing and sizing on the fly."""

    def copy(self, source: BlobRef, container: str, name: str) -> BlobRef:
        """Store the blob ``source`` names again as ``container/name`` inside the store, with no
        byte passing through this process (a hard link on disk, a server-side copy on Azure);
        raises BlobNotFound if the source is gone. The ref is the source's, renamed."""

    def get(self, container: str, name: str, *, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """The blob's bytes in chunks; raises BlobNotFound (before yielding) if it is missing."""

    def delete(self, container: str, name: str) -> bool:
        """Remove the blob; False if it was not there (deleting is idempotent)."""

    def exists(self, container: str, name: str) -> bool: ...

    def signed_url(
        self,
        container: str,
        name: str,
        *,
        expires_in: timedelta,
        filename: str | None = None,
    ) -> str:
        """A URL that downloads the blob without other credentials until it expires."""

    def list(self, container: str, *, prefix: str = "") -> Iterator[BlobItem]:
        """The container's blobs (name starting with ``prefix``), in no promised order."""


MAX_NAME_LENGTH = 1024  # Azure's limit, and BlobRef's


def check_container(container: str) -> None:
    """Refuse (ValueError) a container that is not one of ``CONTAINERS``."""
    if container not in CONTAINERS:
        raise ValueError(f"unknown container {container!r}; expected one of {CONTAINERS}")


def check_name(container: str, name: str) -> None:
    """Refuse an unknown container or a name that could leave it (ValueError), on every backend.

    ``..``/``.``/empty segments, a leading ``/``, backslashes and control characters are refused
    everywhere, not only on disk: an HTTP client normalises ``a/../b`` in a blob URL too, and one
    name must mean the same blob on every backend.
    """
    check_container(container)
    if not name or len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"a blob name needs 1 to {MAX_NAME_LENGTH} characters")
    if "\\" in name or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ValueError(f"blob name {name!r} contains a backslash or a control character")
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise ValueError(f"blob name {name!r} is absolute or has an empty, '.' or '..' segment")


class Metered:
    """Iterates a ``Source`` chunk by chunk, hashing and counting as it goes.

    Raises BlobTooLarge as soon as the running size passes ``max_size``, before the chunk that
    crosses the limit is handed on, so a backend never writes a byte past the limit. ``size`` and
    ``sha256`` are final once iteration ends.
    """

    def __init__(self, source: Source, max_size: int | None = None) -> None:
        self._source = source
        self._max_size = max_size
        self._hash = hashlib.sha256()
        self.size = 0

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def __iter__(self) -> Iterator[bytes]:
        for chunk in iter_chunks(self._source):
            self.size += len(chunk)
            if self._max_size is not None and self.size > self._max_size:
                raise BlobTooLarge(self._max_size)
            self._hash.update(chunk)
            yield chunk

    def ref(self, container: str, name: str, content_type: str) -> BlobRef:
        """The ref of what was stored; call once iteration has ended."""
        return BlobRef(
            container=container,
            name=name,
            size=self.size,
            sha256=self.sha256,
            content_type=content_type,
        )


def iter_chunks(source: Source | bytes) -> Iterator[bytes]:
    """The non-empty chunks of a ``Source`` (or of plain bytes, taken as one chunk)."""
    # bytes is an Iterable of ints, not of chunks: take it as one chunk rather than fail oddly.
    if isinstance(source, bytes | bytearray | memoryview):
        chunks: Iterable[bytes] = [bytes(source)]
    # Check read() first: file objects iterate by *lines*, which may be one huge line.
    elif hasattr(source, "read"):
        read = cast(BinaryIO, source).read
        chunks = iter(lambda: read(CHUNK_SIZE), b"")
    else:
        chunks = cast(Iterable[bytes], source)
    return (chunk for chunk in chunks if chunk)
