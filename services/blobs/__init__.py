"""Blob storage: pick a backend from one setting (``open_blob_store``), use the ``BlobStore`` API.

A path or ``file:///…`` URL means a local folder; an Azure connection string (Azurite's
``UseDevelopmentStorage=true`` included) or an ``https://`` account URL means Blob Storage.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from services.blobs.store import (
    CHUNK_SIZE,
    CONTAINERS,
    BlobError,
    BlobItem,
    BlobNotFound,
    BlobStore,
    BlobTooLarge,
    Source,
    StorageUnavailable,
)

__all__ = [
    "CHUNK_SIZE",
    "CONTAINERS",
    "BlobError",
    "BlobItem",
    "BlobNotFound",
    "BlobStore",
    "BlobTooLarge",
    "Source",
    "StorageUnavailable",
    "open_blob_store",
]


def open_blob_store(
    url: str,
    *,
    signing_key: bytes = b"",
    base_url: str = "http://127.0.0.1:8000/blobs",
    timeout: float = 20.0,
) -> BlobStore:
    """The store ``url`` names; ``signing_key`` and ``base_url`` sign the local store's URLs;
    ``timeout`` bounds each wait of Blob Storage's calls (to connect, and for each read)."""
    # Backends are imported on demand: the local default should not pay for the Azure SDK.
    if "AccountName=" in url or "UseDevelopmentStorage=true" in url:
        from services.blobs.azure import AzureBlobStore

        return AzureBlobStore.from_connection_string(url, timeout=timeout)
    if url.startswith("https://"):
        from services.blobs.azure import AzureBlobStore

        return AzureBlobStore.from_account_url(url, timeout=timeout)
    from services.blobs.local import LocalBlobStore

    if url.startswith("file://"):
        parsed = urlparse(url)
        if parsed.netloc not in ("", "localhost"):
            raise ValueError(f"a file:// blob store URL must be local, not on {parsed.netloc!r}")
        root = Path(unquote(parsed.path))
    elif "://" in url:
        raise ValueError(
            f"unsupported blob store URL {url!r}: use a path, file://, https:// "
            "or a connection string"
        )
    else:
        root = Path(url)
    return LocalBlobStore(root, signing_key=signing_key, base_url=base_url)
