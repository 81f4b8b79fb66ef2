"""The blob store contract: every backend (local folder, Azure via Azurite) passes these tests.

Tests taking ``blob_store`` run once per backend; the few that need one backend's means (the
local HMAC check, Azure's SAS download, the 200 MB streaming check) say so in their name.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import time
import tracemalloc
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import pytest
from azure.core.credentials import AccessToken
from azure.storage.blob import BlobServiceClient, UserDelegationKey

from services.blobs import open_blob_store
from services.blobs.azure import (
    BLOCK_SIZE,
    AzureBlobStore,
    azurite_connection_string,
    content_disposition,
)
from services.blobs.local import LocalBlobStore
from services.blobs.store import (
    CHUNK_SIZE,
    BlobError,
    BlobNotFound,
    BlobStore,
    BlobTooLarge,
    StorageUnavailable,
)
from tests.services.blobs.conftest import SIGNING_KEY
from web.core.azurite import free_port

MIB = 1024 * 1024


def chunked(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def read(store: BlobStore, container: str, name: str) -> bytes:
    return b"".join(store.get(container, name))


def names(store: BlobStore, container: str, prefix: str = "") -> set[str]:
    return {item.name for item in store.list(container, prefix=prefix)}


# -- put ---------------------------------------------------------------------------------------


def test_put_from_an_iterable_returns_the_ref_with_size_and_sha256(blob_store: BlobStore) -> None:
    data = os.urandom(300_000)
    ref = blob_store.put("uploads", "e1/photo.png", chunked(data), content_type="image/png")
    assert ref.container == "uploads" and ref.name == "e1/photo.png"
    assert ref.size == len(data)
    assert ref.sha256 == hashlib.sha256(data).hexdigest()
    assert ref.content_type == "image/png"
    assert read(blob_store, "uploads", "e1/photo.png") == data


def test_put_from_a_file_object(blob_store: BlobStore, tmp_path: Path) -> None:
    data = os.urandom(CHUNK_SIZE * 2 + 17)  # several reads, the last one short
    (tmp_path / "input.bin").write_bytes(data)
    with open(tmp_path / "input.bin", "rb") as source:
        ref = blob_store.put("processed", "e1/out.bin", source, content_type="application/pdf")
    assert (ref.size, ref.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert ref.content_type == "application/pdf"
    assert read(blob_store, "processed", "e1/out.bin") == data


def test_put_an_empty_file(blob_store: BlobStore) -> None:
    ref = blob_store.put("temp", "empty.txt", io.BytesIO(b""), content_type="text/plain")
    assert (ref.size, ref.sha256) == (0, hashlib.sha256(b"").hexdigest())
    assert blob_store.exists("temp", "empty.txt")
    assert read(blob_store, "temp", "empty.txt") == b""


@pytest.mark.parametrize(
    "size", [1, BLOCK_SIZE - 1, BLOCK_SIZE, BLOCK_SIZE + 1, 2 * BLOCK_SIZE], ids=str
)
def test_sizes_around_the_azure_block_size_round_trip(blob_store: BlobStore, size: int) -> None:
    # Odd-sized source chunks, so block edges fall inside chunks.
    data = os.urandom(size)
    ref = blob_store.put("uploads", "e1/b.bin", chunked(data, 700_001), content_type="x/y")
    assert (ref.size, ref.sha256) == (size, hashlib.sha256(data).hexdigest())
    assert read(blob_store, "uploads", "e1/b.bin") == data


def test_put_replaces_an_existing_blob(blob_store: BlobStore) -> None:
    blob_store.put("uploads", "e1/a.txt", [b"first version, longer"], content_type="text/plain")
    ref = blob_store.put("uploads", "e1/a.txt", [b"second"], content_type="text/plain")
    assert ref.size == 6
    assert read(blob_store, "uploads", "e1/a.txt") == b"second"
    assert [(i.name, i.size) for i in blob_store.list("uploads")] == [("e1/a.txt", 6)]


def test_a_put_over_max_size_is_refused_and_leaves_nothing(blob_store: BlobStore) -> None:
    # Over 4 MiB, so the Azure backend has staged a block before it notices.
    data = os.urandom(9 * MIB)
    with pytest.raises(BlobTooLarge) as refused:
        blob_store.put(
            "uploads", "e1/big.bin", chunked(data, MIB), content_type="x/y", max_size=8 * MIB
        )
    assert refused.value.code == "file_too_large" and refused.value.limit == 8 * MIB
    assert not blob_store.exists("uploads", "e1/big.bin")
    with pytest.raises(BlobNotFound):
        blob_store.get("uploads", "e1/big.bin")
    assert names(blob_store, "uploads") == set()
    if isinstance(blob_store, LocalBlobStore):  # not even a half-written temporary file
        assert [p for p in blob_store.root.rglob("*") if p.is_file()] == []


def test_a_put_of_exactly_max_size_is_accepted(blob_store: BlobStore) -> None:
    ref = blob_store.put("uploads", "e1/x", [b"12345"], content_type="x/y", max_size=5)
    assert ref.size == 5


def test_a_refused_put_keeps_the_blob_it_would_have_replaced(blob_store: BlobStore) -> None:
    blob_store.put("uploads", "e1/a.txt", [b"keep me"], content_type="text/plain")
    with pytest.raises(BlobTooLarge):
        blob_store.put("uploads", "e1/a.txt", [b"x" * 100], content_type="x/y", max_size=10)
    assert read(blob_store, "uploads", "e1/a.txt") == b"keep me"


def test_a_reader_never_sees_a_half_written_blob(blob_store: BlobStore) -> None:
    blob_store.put("uploads", "e1/old.bin", [b"old"], content_type="x/y")
    seen = []

    def source() -> Iterator[bytes]:
        yield os.urandom(5 * MIB)
        # Mid-put: neither the new blob nor the replacement is visible yet.
        seen.append(
            (
                blob_store.exists("uploads", "e1/new.bin"),
                "e1/new.bin" in names(blob_store, "uploads"),
                read(blob_store, "uploads", "e1/old.bin"),
            )
        )
        yield os.urandom(MIB)

    blob_store.put("uploads", "e1/new.bin", source(), content_type="x/y")
    assert seen == [(False, False, b"old")]
    blob_store.put("uploads", "e1/old.bin", source(), content_type="x/y")
    assert seen[1] == (True, True, b"old")
    assert len(read(blob_store, "uploads", "e1/old.bin")) == 6 * MIB


# -- get ---------------------------------------------------------------------------------------


def test_get_round_trips_a_multi_chunk_blob(blob_store: BlobStore) -> None:
    data = os.urandom(5 * MIB + 123)
    blob_store.put("processed", "e2/video.mp4", chunked(data, MIB), content_type="video/mp4")
    chunks = list(blob_store.get("processed", "e2/video.mp4"))
    assert len(chunks) > 1
    assert max(len(c) for c in chunks) <= CHUNK_SIZE
    assert b"".join(chunks) == data
    small = list(blob_store.get("processed", "e2/video.mp4", chunk_size=256 * 1024))
    assert b"".join(small) == data and max(len(c) for c in small) <= 256 * 1024


def test_get_of_a_missing_blob_raises_before_iterating(blob_store: BlobStore) -> None:
    with pytest.raises(BlobNotFound) as missing:
        blob_store.get("uploads", "nope/missing.png")  # not iterated: raising is eager
    assert missing.value.code == "blob_not_found"
    blob_store.put("uploads", "e1/a.txt", [b"a"], content_type="text/plain")
    with pytest.raises(BlobNotFound):
        blob_store.get("uploads", "e1")  # a "directory" is not a blob
    with pytest.raises(BlobNotFound):
        blob_store.get("processed", "e1/a.txt")  # containers are separate


# -- delete, exists, list ------------------------------------------------------------------------


def test_delete_is_idempotent_and_reports_whether_it_removed(blob_store: BlobStore) -> None:
    blob_store.put("temp", "e1/scratch", [b"x"], content_type="x/y")
    assert blob_store.exists("temp", "e1/scratch")
    assert blob_store.delete("temp", "e1/scratch") is True
    assert not blob_store.exists("temp", "e1/scratch")
    assert blob_store.delete("temp", "e1/scratch") is False
    assert blob_store.delete("temp", "never/was") is False
    with pytest.raises(BlobNotFound):
        blob_store.get("temp", "e1/scratch")
    # The name is free again afterwards.
    blob_store.put("temp", "e1/scratch", [b"again"], content_type="x/y")
    assert read(blob_store, "temp", "e1/scratch") == b"again"


def test_exists(blob_store: BlobStore) -> None:
    assert not blob_store.exists("uploads", "e1/a.txt")
    blob_store.put("uploads", "e1/a.txt", [b"a"], content_type="text/plain")
    assert blob_store.exists("uploads", "e1/a.txt")
    assert not blob_store.exists("uploads", "e1")
    assert not blob_store.exists("processed", "e1/a.txt")


def test_list_gives_size_and_modified_time_and_filters_by_prefix(blob_store: BlobStore) -> None:
    before = datetime.now(UTC) - timedelta(minutes=1)
    for name, data in [("e1/a.png", b"aa"), ("e1/b.png", b"bbb"), ("e12/c", b"c"), ("z", b"")]:
        blob_store.put("uploads", name, [data], content_type="x/y")
    blob_store.put("processed", "e1/out.pdf", [b"pdf"], content_type="application/pdf")

    items = {i.name: i for i in blob_store.list("uploads")}
    assert {n: i.size for n, i in items.items()} == {
        "e1/a.png": 2,
        "e1/b.png": 3,
        "e12/c": 1,
        "z": 0,
    }
    assert all(i.container == "uploads" for i in items.values())
    assert all(
        before < i.modified < datetime.now(UTC) + timedelta(minutes=1) for i in items.values()
    )
    assert all(i.modified.utcoffset() == timedelta(0) for i in items.values())
    assert names(blob_store, "uploads", "e1/") == {"e1/a.png", "e1/b.png"}
    assert names(blob_store, "uploads", "e1") == {"e1/a.png", "e1/b.png", "e12/c"}
    assert names(blob_store, "uploads", "e1/b") == {"e1/b.png"}
    assert names(blob_store, "uploads", "nothing/") == set()
    assert names(blob_store, "processed") == {"e1/out.pdf"}
    assert names(blob_store, "temp") == set()


def test_names_with_spaces_and_unicode_work_end_to_end(blob_store: BlobStore) -> None:
    name = "e1/My photo (1) #2 é%20.png"
    blob_store.put("uploads", name, [b"data"], content_type="image/png")
    assert blob_store.exists("uploads", name)
    assert names(blob_store, "uploads") == {name}
    assert read(blob_store, "uploads", name) == b"data"
    assert blob_store.delete("uploads", name)


@pytest.mark.parametrize(
    "name",
    ["../x", "e1/../../x", "..", "/etc/passwd", "e1\\..\\x", "a\x00b", "", "a//b", "./a", "a/"],
)
def test_names_that_could_escape_the_container_are_refused(
    blob_store: BlobStore, name: str
) -> None:
    with pytest.raises(ValueError):
        blob_store.put("uploads", name, [b"x"], content_type="x/y")
    for call in (blob_store.get, blob_store.delete, blob_store.exists):
        with pytest.raises(ValueError):
            call("uploads", name)
    with pytest.raises(ValueError):
        blob_store.signed_url("uploads", name, expires_in=timedelta(minutes=5))


def test_unknown_containers_are_refused(blob_store: BlobStore) -> None:
    with pytest.raises(ValueError):
        blob_store.put("../uploads", "a", [b"x"], content_type="x/y")
    with pytest.raises(ValueError):
        list(blob_store.list("secrets"))


def test_setup_is_idempotent(blob_store: BlobStore) -> None:
    blob_store.put("uploads", "e1/a", [b"a"], content_type="x/y")
    blob_store.setup()
    assert read(blob_store, "uploads", "e1/a") == b"a"


# -- copy ----------------------------------------------------------------------------------------


def test_copy_stores_the_same_bytes_under_the_new_name(blob_store: BlobStore) -> None:
    data = os.urandom(BLOCK_SIZE + 1234)  # more than one Azure block
    ref = blob_store.put("uploads", "e1/in.bin", chunked(data), content_type="image/png")
    copied = blob_store.copy(ref, "uploads", "e2/in.bin")
    assert (copied.container, copied.name) == ("uploads", "e2/in.bin")
    assert (copied.size, copied.sha256, copied.content_type) == (
        ref.size,
        ref.sha256,
        "image/png",
    )
    assert read(blob_store, "uploads", "e2/in.bin") == data


def test_deleting_either_copy_leaves_the_other_whole(blob_store: BlobStore) -> None:
    ref = blob_store.put("uploads", "e1/in.txt", [b"original"], content_type="text/plain")
    blob_store.copy(ref, "uploads", "e2/in.txt")
    assert blob_store.delete("uploads", "e1/in.txt")
    assert read(blob_store, "uploads", "e2/in.txt") == b"original"
    again = blob_store.copy(ref.model_copy(update={"name": "e2/in.txt"}), "uploads", "e3/in.txt")
    blob_store.delete("uploads", "e3/in.txt")
    assert read(blob_store, "uploads", "e2/in.txt") == b"original"
    assert again.name == "e3/in.txt"


def test_replacing_the_original_does_not_change_the_copy(blob_store: BlobStore) -> None:
    ref = blob_store.put("uploads", "e1/in.txt", [b"first"], content_type="text/plain")
    blob_store.copy(ref, "uploads", "e2/in.txt")
    blob_store.put("uploads", "e1/in.txt", [b"second"], content_type="text/plain")
    assert read(blob_store, "uploads", "e2/in.txt") == b"first"


def test_copy_of_a_missing_blob_raises_blob_not_found(blob_store: BlobStore) -> None:
    ref = blob_store.put("uploads", "e1/in.txt", [b"x"], content_type="text/plain")
    blob_store.delete("uploads", "e1/in.txt")
    with pytest.raises(BlobNotFound):
        blob_store.copy(ref, "uploads", "e2/in.txt")
    assert not blob_store.exists("uploads", "e2/in.txt")
    assert names(blob_store, "uploads") == set()


def test_local_copy_of_200_mb_is_a_link_not_a_second_file(local_store: LocalBlobStore) -> None:
    chunk = os.urandom(CHUNK_SIZE)
    ref = local_store.put("uploads", "e1/huge.bin", (chunk for _ in range(200)), content_type="x")
    started = time.perf_counter()
    local_store.copy(ref, "uploads", "e2/huge.bin")
    took = time.perf_counter() - started
    original = (local_store.root / "uploads" / "e1" / "huge.bin").stat()
    copied = (local_store.root / "uploads" / "e2" / "huge.bin").stat()
    assert (copied.st_ino, copied.st_nlink) == (original.st_ino, 2)
    print(f"local copy of 200 MiB: {took * 1000:.1f} ms")
    assert os.listdir(local_store.root / ".incoming") == []


# -- signed URLs ---------------------------------------------------------------------------------


def test_signed_url_for_azure_downloads_the_bytes_as_an_attachment(
    azure_store: AzureBlobStore,
) -> None:
    data = os.urandom(100_000)
    azure_store.put("processed", "e1/résumé 1.pdf", [data], content_type="application/pdf")
    url = azure_store.signed_url(
        "processed", "e1/résumé 1.pdf", expires_in=timedelta(minutes=5), filename="résumé 1.pdf"
    )
    assert urlparse(url).hostname == "127.0.0.1"
    with urllib.request.urlopen(url, timeout=10) as response:  # no credentials but the SAS
        assert response.read() == data
        assert response.headers["Content-Type"] == "application/pdf"
        assert response.headers["Content-Disposition"] == content_disposition("résumé 1.pdf")
    # Tampering with the grant (another blob, same signature) is refused by the service.
    azure_store.put("processed", "e1/other.pdf", [b"secret"], content_type="application/pdf")
    forged = url.replace(urlparse(url).path.rsplit("/", 1)[1], "other.pdf")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(forged, timeout=10)
    assert refused.value.code == 403


def test_signed_url_for_local_is_checked_by_verify_signature(local_store: LocalBlobStore) -> None:
    local_store.put("processed", "e1/out file.pdf", [b"pdf"], content_type="application/pdf")
    url = local_store.signed_url(
        "processed", "e1/out file.pdf", expires_in=timedelta(minutes=5), filename="out file.pdf"
    )
    parsed = urlparse(url)
    assert url.startswith("http://127.0.0.1:8000/blobs/processed/e1/out%20file.pdf?")
    query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
    expires, sig, filename = int(query["expires"]), query["sig"], query["filename"]
    container, name = unquote(parsed.path).removeprefix("/blobs/").split("/", 1)
    assert (container, name, filename) == ("processed", "e1/out file.pdf", "out file.pdf")

    verify = local_store.verify_signature
    assert verify(container, name, expires, sig, filename)
    tampered = ("0" if sig[0] != "0" else "1") + sig[1:]
    assert not verify(container, name, expires, tampered, filename)
    assert not verify(container, "e1/other.pdf", expires, sig, filename)
    assert not verify("uploads", name, expires, sig, filename)
    assert not verify(container, name, expires, sig, "evil.exe")
    assert not verify(container, name, expires, sig, None)
    assert not verify(container, name, expires + 3600, sig, filename)  # extended by hand
    after_expiry = datetime.fromtimestamp(expires, UTC) + timedelta(seconds=1)
    assert not verify(container, name, expires, sig, filename, now=after_expiry)
    assert not verify(container, "../x", expires, sig, filename)
    assert not verify(container, name, expires, "é" + sig, filename)
    other_key = LocalBlobStore(local_store.root, signing_key=b"another key")
    assert not other_key.verify_signature(container, name, expires, sig, filename)


def test_local_signed_url_without_a_filename_and_without_a_key(local_store: LocalBlobStore) -> None:
    url = local_store.signed_url("uploads", "e1/a", expires_in=timedelta(hours=1))
    query = {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}
    assert "filename" not in query
    assert local_store.verify_signature(
        "uploads", "e1/a", int(query["expires"]), query["sig"], None
    )
    keyless = LocalBlobStore(local_store.root, signing_key=b"")
    with pytest.raises(ValueError):
        keyless.signed_url("uploads", "e1/a", expires_in=timedelta(hours=1))
    assert not keyless.verify_signature(
        "uploads", "e1/a", int(query["expires"]), query["sig"], None
    )


# -- backend specifics ----------------------------------------------------------------------------


def test_azure_stores_the_sha256_and_content_type_on_the_blob(
    azure_store: AzureBlobStore, azurite: str
) -> None:
    for size in (10, 5 * MIB):  # one Put Blob, and staged blocks
        data = os.urandom(size)
        ref = azure_store.put("uploads", f"e1/{size}", chunked(data, MIB), content_type="image/png")
        service = BlobServiceClient.from_connection_string(azurite)
        props = service.get_blob_client(
            azure_store.container_name("uploads"), f"e1/{size}"
        ).get_blob_properties()
        assert props.metadata == {"sha256": ref.sha256}
        assert props.content_settings.content_type == "image/png"
        assert props.size == size


class FakeTokenCredential:
    """A fake: Azurite signs no user delegation keys without OAuth over HTTPS."""

    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        return AccessToken("token", int(time.time()) + 3600)


def test_azure_signed_url_with_a_token_credential_uses_one_delegation_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = AzureBlobStore.from_account_url(
        "https://acct.blob.core.windows.net", credential=FakeTokenCredential()
    )
    requested = []

    def get_user_delegation_key(start: datetime, expiry: datetime) -> UserDelegationKey:
        requested.append((start, expiry))  # the one request this would send to Azure
        key = UserDelegationKey()
        key.signed_oid, key.signed_tid = str(uuid.uuid4()), str(uuid.uuid4())
        key.signed_start, key.signed_expiry = start.isoformat(), expiry.isoformat()
        key.signed_service, key.signed_version = "b", "2025-01-05"
        key.value = base64.b64encode(b"k" * 32).decode()
        return key

    monkeypatch.setattr(store._service, "get_user_delegation_key", get_user_delegation_key)
    url = store.signed_url(
        "processed", "e1/out.pdf", expires_in=timedelta(hours=1), filename="o.pdf"
    )
    query = parse_qs(urlparse(url).query)
    assert url.startswith("https://acct.blob.core.windows.net/processed/e1/out.pdf?")
    assert query["sp"] == ["r"] and "skoid" in query and "sig" in query
    assert query["rscd"] == [content_disposition("o.pdf")]
    store.signed_url("processed", "e1/other.pdf", expires_in=timedelta(hours=2))
    assert len(requested) == 1  # the key lasts a day: the second URL reuses it
    store.signed_url("processed", "e1/other.pdf", expires_in=timedelta(days=3))
    assert len(requested) == 2 and requested[1][1] - requested[1][0] > timedelta(days=2, hours=23)
    with pytest.raises(ValueError):
        store.signed_url("processed", "e1/other.pdf", expires_in=timedelta(days=8))


def test_azure_unreachable_is_storage_unavailable() -> None:
    # Nothing listens on this port; no retries, so the test is quick.
    conn = azurite_connection_string(free_port())
    store = AzureBlobStore.from_connection_string(conn, retry_total=0, connection_timeout=2)
    with pytest.raises(StorageUnavailable) as down:
        store.put("uploads", "e1/a", [b"x"], content_type="x/y")
    assert down.value.retryable and down.value.code == "storage_unavailable"
    with pytest.raises(StorageUnavailable):
        store.get("uploads", "e1/a")
    with pytest.raises(StorageUnavailable):
        list(store.list("uploads"))


def test_local_put_streams_200_mb_in_little_memory(local_store: LocalBlobStore) -> None:
    chunk = os.urandom(CHUNK_SIZE)
    total = 200 * MIB

    def source() -> Iterator[bytes]:
        for _ in range(total // CHUNK_SIZE):
            yield chunk  # the same object again: the generator itself holds 1 MiB

    tracemalloc.start()
    try:
        ref = local_store.put("uploads", "e1/huge.bin", source(), content_type="x/y")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ref.size == total
    assert peak < 16 * MIB, f"put held {peak / MIB:.1f} MiB at its peak"
    expected = hashlib.sha256()
    for _ in range(total // CHUNK_SIZE):
        expected.update(chunk)
    assert ref.sha256 == expected.hexdigest()
    assert (local_store.root / "uploads" / "e1" / "huge.bin").stat().st_size == total


def test_azure_put_streams_in_little_memory(azure_store: AzureBlobStore) -> None:
    chunk = os.urandom(CHUNK_SIZE)
    tracemalloc.start()
    try:
        source = (chunk for _ in range(40))
        ref = azure_store.put("uploads", "e1/big.bin", source, content_type="x/y")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ref.size == 40 * MIB
    # A 4 MiB block being filled and one being sent: about 8 MiB, whatever the blob's size.
    assert peak < 12 * MIB, f"put held {peak / MIB:.1f} MiB at its peak"


def test_local_delete_prunes_directories_it_emptied(local_store: LocalBlobStore) -> None:
    local_store.put("uploads", "e1/deep/a", [b"a"], content_type="x/y")
    local_store.put("uploads", "e1/b", [b"b"], content_type="x/y")
    local_store.delete("uploads", "e1/deep/a")
    assert not (local_store.root / "uploads" / "e1" / "deep").exists()
    local_store.delete("uploads", "e1/b")
    assert list((local_store.root / "uploads").iterdir()) == []
    assert (local_store.root / "uploads").is_dir()


def test_local_names_that_clash_with_a_directory_are_a_plain_error(
    local_store: LocalBlobStore,
) -> None:
    # On disk "e1" cannot be a file and a directory at once (Azure allows it): a clear,
    # non-retryable error, and no temporary file left behind.
    local_store.put("uploads", "e1", [b"file"], content_type="x/y")
    with pytest.raises(BlobError) as clash:
        local_store.put("uploads", "e1/a", [b"x"], content_type="x/y")
    assert not clash.value.retryable
    local_store.put("uploads", "e2/a", [b"x"], content_type="x/y")
    with pytest.raises(BlobError) as clash:
        local_store.put("uploads", "e2", [b"x"], content_type="x/y")
    assert not clash.value.retryable
    assert list((local_store.root / ".incoming").iterdir()) == []
    assert read(local_store, "uploads", "e1") == b"file"


def test_local_put_without_setup_creates_what_it_needs(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "new", signing_key=SIGNING_KEY)
    store.put("temp", "a/b", [b"x"], content_type="x/y")
    assert read(store, "temp", "a/b") == b"x"
    assert names(store, "uploads") == set()


# -- open_blob_store ------------------------------------------------------------------------------


def test_open_blob_store_picks_the_backend_from_the_url(tmp_path: Path) -> None:
    store = open_blob_store(str(tmp_path / "a"), signing_key=SIGNING_KEY)
    assert isinstance(store, LocalBlobStore) and store.root == tmp_path / "a"
    store = open_blob_store(f"file://{tmp_path}/b%20c", signing_key=SIGNING_KEY)
    assert isinstance(store, LocalBlobStore) and store.root == tmp_path / "b c"
    assert isinstance(open_blob_store(azurite_connection_string(10000)), AzureBlobStore)
    assert isinstance(open_blob_store("UseDevelopmentStorage=true"), AzureBlobStore)
    # Building the client (and the default credential) makes no request.
    assert isinstance(open_blob_store("https://acct.blob.core.windows.net"), AzureBlobStore)
    with pytest.raises(ValueError):
        open_blob_store("s3://bucket")
    with pytest.raises(ValueError):
        open_blob_store("file://otherhost/path")
