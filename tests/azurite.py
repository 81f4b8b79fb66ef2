"""Azurite, the Azure Storage emulator, for every test that needs Azure Blob Storage.

Azurite is the npm package installed under ``var/node`` (the Makefile does it). Without it those
tests are skipped, except under CI=true, where that would hide a broken setup and so fails
instead. It listens on 127.0.0.1 only. tests/conftest.py loads this as a
plugin, so the ``azurite`` fixture is there for every test.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from services.blobs.azure import azurite_connection_string
from tests.conftest import IN_CI
from web.core.azurite import AZURITE, INSTALL_HINT, command, free_port as free_port, wait_listening


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running Azurite blob service for the session; yields its connection string."""
    if not AZURITE.exists():
        reason = f"Azurite is not installed at {AZURITE} (install it: `{INSTALL_HINT}`)"
        if IN_CI:
            pytest.fail(f"Azurite is required under CI=true: {reason}")
        pytest.skip(reason)
    workdir = tmp_path_factory.mktemp("azurite")
    port = free_port()
    log_path = workdir / "azurite.log"
    with open(log_path, "wb") as log:
        # A file, not a pipe: nobody reads a pipe while tests run, and a full pipe blocks Azurite.
        process = subprocess.Popen(
            command(workdir / "data", port), stdout=log, stderr=subprocess.STDOUT
        )
    try:
        if not wait_listening(port, lambda: process.poll() is None):
            output = log_path.read_text(errors="replace")[-2000:]
            pytest.fail(f"Azurite did not start on 127.0.0.1:{port}:\n{output}")
        yield azurite_connection_string(port)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
