"""Blob storage: one interface for the files executions read and write, on local disk or Azure.

Containers are ``uploads`` (inputs, kept 7 days), ``processed`` (outputs, 30 days) and ``temp``
(scratch, 24 hours). ``put`` streams: it reads its source chunk by chunk, hashing and counting as
it goes, so a 500 MB upload never sits in memory; it refuses (and leaves nothing behind) once the
source passes ``max_size``. Every backend passes the same contract suite
(``tests/services/blobs/test_contract.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import BinaryIO, Protocol

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
