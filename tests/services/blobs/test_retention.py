"""Retention: stale temp blobs are swept by age; an expired execution's files are removed."""

from __future__ import annotations

import os
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from events.catalog import BlobRef, DeclaredInput
from events.opening import open_store
from services.blobs.local import LocalBlobStore
from services.blobs.retention import sweep_temp
from services.blobs.store import BlobStore
from services.executions.commands import Complete, RecordUpload, Start, Submit
from services.executions.decider import Status, initial_state
from services.executions.service import ExecutionService
from services.executions.sweeper import remove_execution_blobs, sweep_retention


def put(store: BlobStore, container: str, name: str, data: bytes = b"data") -> BlobRef:
    return store.put(container, name, [data], content_type="application/octet-stream")


def age(store: LocalBlobStore, container: str, name: str, by: timedelta) -> None:
    when = (datetime.now(UTC) - by).timestamp()
    os.utime(store.root / container / name, (when, when))


def names(store: BlobStore, container: str) -> set[str]:
    return {item.name for item in store.list(container)}


def test_sweep_temp_removes_only_temp_blobs_past_max_age(local_store: LocalBlobStore) -> None:
    for name in ("e1/old-a", "e1/old-b", "e2/fresh", "just-under"):
        put(local_store, "temp", name)
    put(local_store, "uploads", "e1/old-upload")
    age(local_store, "temp", "e1/old-a", timedelta(hours=25))
    age(local_store, "temp", "e1/old-b", timedelta(days=3))
    age(local_store, "temp", "just-under", timedelta(hours=23, minutes=59))
    age(local_store, "uploads", "e1/old-upload", timedelta(days=3))

    assert sweep_temp(local_store, datetime.now(UTC)) == 2

    assert names(local_store, "temp") == {"e2/fresh", "just-under"}
    assert names(local_store, "uploads") == {"e1/old-upload"}  # other containers: not its job
    assert not (local_store.root / "temp" / "e1").exists()  # emptied directories go too
    assert sweep_temp(local_store, datetime.now(UTC)) == 0


def test_sweep_temp_honours_max_age(local_store: LocalBlobStore) -> None:
    put(local_store, "temp", "a")
    age(local_store, "temp", "a", timedelta(hours=2))
    now = datetime.now(UTC)
    assert sweep_temp(local_store, now, max_age=timedelta(hours=3)) == 0
    assert sweep_temp(local_store, now, max_age=timedelta(hours=1)) == 1


def test_sweep_temp_on_every_backend(blob_store: BlobStore) -> None:
    # The service stamps Azure's modification time, so age the clock instead of the blobs.
    put(blob_store, "temp", "e1/scratch")
    put(blob_store, "processed", "e1/out")
    now = datetime.now(UTC)
    assert sweep_temp(blob_store, now + timedelta(hours=23)) == 0
    assert sweep_temp(blob_store, now + timedelta(hours=25)) == 1
    assert names(blob_store, "temp") == set()
    assert names(blob_store, "processed") == {"e1/out"}


def test_remove_execution_blobs_deletes_upload_and_output(blob_store: BlobStore) -> None:
    eid = uuid.uuid4()
    upload = put(blob_store, "uploads", f"{eid}/in.png")
    output = put(blob_store, "processed", f"{eid}/out.png")
    keep = put(blob_store, "processed", f"{uuid.uuid4()}/other.png")
    state = replace(initial_state(), upload=upload, output=output)
    remove = remove_execution_blobs(blob_store)

    assert remove(state) == [upload, output]
    assert not blob_store.exists("uploads", upload.name)
    assert not blob_store.exists("processed", output.name)
    assert blob_store.exists("processed", keep.name)
    # Run again (a sweep that died before recording Expired): the files are gone, and the
    # Expired event still names them; the blob we must keep is still there.
    assert remove(state) == [upload, output]
    assert blob_store.exists("processed", keep.name)


def test_remove_execution_blobs_without_files(blob_store: BlobStore) -> None:
    remove = remove_execution_blobs(blob_store)
    assert remove(initial_state()) == []
    output = put(blob_store, "processed", "e1/out.txt")
    assert remove(replace(initial_state(), output=output)) == [output]


def test_sweep_retention_with_real_blobs_records_what_it_removed(
    blob_store: BlobStore, sqlite_store_url: str
) -> None:
    events = open_store(sqlite_store_url)
    events.setup()
    try:
        service = ExecutionService(events)
        eid = uuid.uuid4()
        t0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
        upload = put(blob_store, "uploads", f"{eid}/in.png", b"png")
        output = put(blob_store, "processed", f"{eid}/out.pdf", b"pdf")
        declared = DeclaredInput(filename="in.png", size=3, content_type="image/png")
        service.handle(eid, Submit(eid, "img-to-pdf", "pdf", "1", "async", "7", input=declared))
        service.handle(eid, RecordUpload(upload))
        service.handle(eid, Start("worker-1", t0, timedelta(minutes=5)))
        service.handle(eid, Complete(duration_ms=10, output=output))

        report = sweep_retention(
            service, [(eid, t0)], t0 + timedelta(days=31), remove_execution_blobs(blob_store)
        )

        assert report.expired == [eid]
        state = service.load(eid).state
        assert state.status is Status.EXPIRED
        assert set(state.blobs_removed) == {upload, output}
        assert names(blob_store, "uploads") == set() and names(blob_store, "processed") == set()
    finally:
        events.close()
