"""Fixtures shared by the services' tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.blobs.local import LocalBlobStore


@pytest.fixture
def blobs(tmp_path: Path) -> LocalBlobStore:
    """A local blob store in a temp folder, its containers made."""
    store = LocalBlobStore(tmp_path / "blobs", signing_key=b"k")
    store.setup()
    return store
