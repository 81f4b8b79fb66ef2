"""Blob store fixtures: a fresh store of each backend per test (Azure on tests/azurite.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from services.blobs.azure import AzureBlobStore
from services.blobs.local import LocalBlobStore
from services.blobs.store import CONTAINERS, BlobStore

SIGNING_KEY = b"test signing key"


@pytest.fixture
def local_store(tmp_path: Path) -> LocalBlobStore:
    store = LocalBlobStore(tmp_path / "blobs", signing_key=SIGNING_KEY)
    store.setup()
    return store


@pytest.fixture
def azure_store(azurite: str) -> Iterator[AzureBlobStore]:
    # Fresh containers per test ("t1a2b…-uploads"), so tests never see each other's blobs.
    prefix = f"t{uuid.uuid4().hex[:12]}-"
    store = AzureBlobStore.from_connection_string(azurite, container_prefix=prefix)
    store.setup()
    yield store
    service = BlobServiceClient.from_connection_string(azurite)
    for container in CONTAINERS:
        service.delete_container(prefix + container)


@pytest.fixture(params=["local", "azure"])
def blob_store(request: pytest.FixtureRequest) -> BlobStore:
    """Each backend in turn: the contract suite runs once per backend."""
    return request.getfixturevalue(f"{request.param}_store")
