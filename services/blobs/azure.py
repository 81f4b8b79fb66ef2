"""Blob storage on Azure Blob Storage (or Azurite), through the sync azure-storage-blob SDK.

``put`` stages the source block by block as it reads it and commits the block list (with the
content type and the sha256 as metadata) only once the whole source is read and within
``max_size``: until that commit the service shows no new blob, so a refused or broken upload
leaves the previous blob (or nothing) in place, and its staged blocks are discarded by the
service. A source shorter than one block (4 MiB) goes up in a single Put Blob. Network failures,
throttling and 5xx answers become ``StorageUnavailable``; a missing blob becomes ``BlobNotFound``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import (
    BlobBlock,
    BlobClient,
    BlobSasPermissions,
    BlobServiceClient,
    ContainerClient,
    ContentSettings,
    LinearRetry,
    StorageStreamDownloader,
    UserDelegationKey,
    generate_blob_sas,
)

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

BLOCK_SIZE = 4 * 1024 * 1024
# Azurite's published development account (the Azure Storage emulator): a well-known key, not a
# secret. ``make run-azure`` and the tests use it.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def azurite_connection_string(port: int, host: str = "127.0.0.1") -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint=http://{host}:{port}/{AZURITE_ACCOUNT};"
    )


# Without these the first GET of a download pulls up to 32 MiB into memory.
CLIENT_DEFAULTS: dict[str, Any] = {
    "max_single_get_size": BLOCK_SIZE,
    "max_chunk_get_size": BLOCK_SIZE,
}
# Each call: at most 3 attempts about a second apart, each waiting at most ``timeout`` to connect
# and to each read. The SDK's own default (4 attempts, 18 to 42 s apart, 20 s to connect, 60 s per
# read) kept a put to a stopped Azurite failing for 87 s while its request held a web thread.
TIMEOUT = 20.0
RETRIES = 2


def client_options(timeout: float = TIMEOUT) -> dict[str, Any]:
    """The SDK client's options: our download sizes, ``timeout`` and bounded retries."""
    return {
        **CLIENT_DEFAULTS,
        "connection_timeout": timeout,
        "read_timeout": timeout,
        "retry_policy": LinearRetry(backoff=1, retry_total=RETRIES, random_jitter_range=0.5),
    }


# How long ``copy`` waits for a Copy Blob the service has not finished at once.
COPY_WAIT_SECONDS = 60.0
# The service refuses user delegation keys that last longer than 7 days.
MAX_DELEGATION = timedelta(days=7) - timedelta(minutes=5)


@contextmanager
def _errors(action: str) -> Iterator[None]:
    """Turn SDK errors into ours: transient ones retryable, the rest a plain BlobError."""
    try:
        yield
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise StorageUnavailable(f"{action}: {exc}") from exc
    except HttpResponseError as exc:
        status = exc.status_code or 0
        if status >= 500 or status == 429:
            raise StorageUnavailable(f"{action}: {exc.message}") from exc
        raise BlobError(f"{action}: {exc.message}") from exc
    except AzureError as exc:
        raise BlobError(f"{action}: {exc}") from exc


def _blocks(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    """Regroup chunks of any size into blocks of ``size`` bytes (the last one shorter).

    One reused buffer and one copy per block: a growing bytearray sliced into blocks would hold
    three block-sized copies at once.
    """
    block = bytearray(size)
    filled = 0
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            n = min(size - filled, len(view))
            block[filled : filled + n] = view[:n]
            filled += n
            view = view[n:]
            if filled == size:
                yield bytes(block)
                filled = 0
    if filled:
        yield bytes(block[:filled])


def content_disposition(filename: str) -> str:
    """``attachment`` with the filename, ASCII-safe, plus RFC 6266's UTF-8 form when needed."""
    fallback = filename.encode("ascii", "replace").decode().replace("\\", "_").replace('"', "_")
    value = f'attachment; filename="{fallback}"'
    if fallback != filename:
        value += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return value


class AzureBlobStore:
    def __init__(self, service: BlobServiceClient, *, container_prefix: str = "") -> None:
        # The prefix lets several deployments (or test runs) share one account: "t1-uploads".
        self._service = service
        self._prefix = container_prefix
        self._delegation: tuple[UserDelegationKey, datetime] | None = None
        self._delegation_lock = threading.Lock()

    @classmethod
    def from_connection_string(
        cls,
        conn_str: str,
        *,
        container_prefix: str = "",
        timeout: float = TIMEOUT,
        **options: Any,
    ) -> AzureBlobStore:
        options = {**client_options(timeout), **options}
        service = BlobServiceClient.from_connection_string(conn_str, **options)
        return cls(service, container_prefix=container_prefix)

    @classmethod
    def from_account_url(
        cls,
        url: str,
        credential: Any = None,
        *,
        container_prefix: str = "",
        timeout: float = TIMEOUT,
        **options: Any,
    ) -> AzureBlobStore:
        if credential is None:
            # Imported here: azure-identity is slow to import and only this path needs it.
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        options = {**client_options(timeout), **options}
        service = BlobServiceClient(url, credential=credential, **options)
        return cls(service, container_prefix=container_prefix)

    def __repr__(self) -> str:
        return f"AzureBlobStore({self._service.url!r}, container_prefix={self._prefix!r})"

    def container_name(self, container: str) -> str:
        """The Azure container behind one of ours (``uploads`` → ``<prefix>uploads``)."""
        return self._prefix + container

    def _blob(self, container: str, name: str) -> BlobClient:
        check_name(container, name)
        return self._service.get_blob_client(self.container_name(container), name)

    def setup(self) -> None:
        for container in CONTAINERS:
            with _errors(f"creating container {container}"), suppress(ResourceExistsError):
                self._service.create_container(self.container_name(container))

    def put(
        self,
        container: str,
        name: str,
        source: Source,
        *,
        content_type: str,
        max_size: int | None = None,
    ) -> BlobRef:
        blob = self._blob(container, name)
        meter = Metered(source, max_size)
        settings = ContentSettings(content_type=content_type)
        action = f"storing {container}/{name}"
        # The source is read between SDK calls, outside _errors: its errors (BlobTooLarge, a
        # client hanging up) reach the caller as they are.
        blocks = _blocks(meter, BLOCK_SIZE)
        data = next(blocks, b"")
        if len(data) < BLOCK_SIZE:  # a short first block is the whole source: one request
            with _errors(action):
                blob.upload_blob(
                    data,
                    overwrite=True,
                    content_settings=settings,
                    metadata={"sha256": meter.sha256},
                )
        else:
            # Block ids must all have one length; a per-put token keeps two puts' blocks apart.
            # (Two puts racing on one name still conflict: a commit discards the other's staged
            # blocks. Names carry the execution id, so that does not happen here.)
            token = uuid.uuid4().hex
            ids: list[BlobBlock] = []
            while data:
                block_id = f"{token}{len(ids):05d}"
                with _errors(action):
                    blob.stage_block(block_id, data, length=len(data))
                ids.append(BlobBlock(block_id=block_id))
                data = b""  # let the sent block go before the next one is built
                data = next(blocks, b"")
            with _errors(action):
                blob.commit_block_list(
                    ids, content_settings=settings, metadata={"sha256": meter.sha256}
                )
        return meter.ref(container, name, content_type)

    def copy(self, source: BlobRef, container: str, name: str) -> BlobRef:
        """A server-side Copy Blob within the account (content type and sha256 metadata come
        along): no byte passes through this process. Within one account the service usually
        finishes at once; a pending copy is waited for, up to ``COPY_WAIT_SECONDS``."""
        origin = self._blob(source.container, source.name)
        target = self._blob(container, name)
        action = f"copying {source.container}/{source.name} to {container}/{name}"
        with _errors(action):
            try:
                copy = target.start_copy_from_url(origin.url)
            except ResourceNotFoundError as exc:
                raise BlobNotFound(f"{source.container}/{source.name}") from exc
            status, copy_id = copy.get("copy_status"), copy.get("copy_id")
            deadline = time.monotonic() + COPY_WAIT_SECONDS
            while status == "pending" and time.monotonic() < deadline:
                time.sleep(0.2)
                status = target.get_blob_properties().copy.status
            if status != "success":
                with suppress(AzureError):
                    if status == "pending" and copy_id:
                        target.abort_copy(copy_id)
                    target.delete_blob()
                raise StorageUnavailable(f"{action}: the copy ended {status}")
        return source.model_copy(update={"container": container, "name": name})

    def get(self, container: str, name: str, *, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        blob = self._blob(container, name)
        # download_blob() sends the first request now, so a missing blob raises before yielding.
        with _errors(f"reading {container}/{name}"):
            try:
                downloader = blob.download_blob()
            except ResourceNotFoundError as exc:
                raise BlobNotFound(f"{container}/{name}") from exc
        return self._chunks(downloader, f"{container}/{name}", chunk_size)

    @staticmethod
    def _chunks(downloader: StorageStreamDownloader, what: str, chunk_size: int) -> Iterator[bytes]:
        # The downloader pins the blob's ETag: a blob replaced mid-download fails, not mixes.
        with _errors(f"reading {what}"):
            for chunk in downloader.chunks():
                for start in range(0, len(chunk), chunk_size):
                    yield chunk[start : start + chunk_size]

    def delete(self, container: str, name: str) -> bool:
        blob = self._blob(container, name)
        with _errors(f"deleting {container}/{name}"):
            try:
                blob.delete_blob(delete_snapshots="include")
            except ResourceNotFoundError:
                return False
        return True

    def exists(self, container: str, name: str) -> bool:
        blob = self._blob(container, name)
        with _errors(f"checking {container}/{name}"):
            return bool(blob.exists())

    def list(self, container: str, *, prefix: str = "") -> Iterator[BlobItem]:
        check_container(container)
        client = self._service.get_container_client(self.container_name(container))
        return self._list(client, container, prefix)

    @staticmethod
    def _list(client: ContainerClient, container: str, prefix: str) -> Iterator[BlobItem]:
        with _errors(f"listing {container}"):
            try:
                for props in client.list_blobs(name_starts_with=prefix or None):
                    yield BlobItem(container, props.name, props.size, props.last_modified)
            except ResourceNotFoundError:
                return  # no container yet: nothing stored

    def signed_url(
        self,
        container: str,
        name: str,
        *,
        expires_in: timedelta,
        filename: str | None = None,
    ) -> str:
        blob = self._blob(container, name)
        if expires_in <= timedelta(0):
            raise ValueError("expires_in must be positive")
        expiry = datetime.now(UTC) + expires_in
        signing: dict[str, Any] = {}
        account_key = getattr(self._service.credential, "account_key", None)
        if account_key:
            signing["account_key"] = account_key
        elif hasattr(self._service.credential, "get_token"):
            signing["user_delegation_key"] = self._delegation_key(expiry)
        else:
            raise ValueError("signing a URL needs an account key or a token credential")
        sas = generate_blob_sas(
            account_name=self._service.account_name,
            container_name=self.container_name(container),
            blob_name=name,
            permission=BlobSasPermissions(read=True),
            expiry=expiry,
            content_disposition=content_disposition(filename) if filename else None,
            **signing,
        )
        return f"{blob.url}?{sas}"

    def _delegation_key(self, until: datetime) -> UserDelegationKey:
        """A user delegation key valid until ``until``, reused while it lasts (one request)."""
        now = datetime.now(UTC)
        if until - now > MAX_DELEGATION:
            raise ValueError("a URL signed with a user delegation key lasts at most 7 days")
        with self._delegation_lock:
            if self._delegation is None or self._delegation[1] < until:
                # Ask for a day (or what this URL needs) so the next URLs reuse the key.
                expiry = max(until, min(now + timedelta(days=1), now + MAX_DELEGATION))
                with _errors("getting a user delegation key"):
                    key = self._service.get_user_delegation_key(now, expiry)
                self._delegation = (key, expiry)
            return self._delegation[0]
