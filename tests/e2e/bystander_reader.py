"""The bystander's own process: read one execution, paced, and say how long each read took.

    python tests/e2e/bystander_reader.py URL TOKEN PATH PAUSE

Another user is another client: a process of their own, not a thread that waits for the
attacker's interpreter lock. Standard library only, one kept-alive connection, so the client
adds as little as it can to what is measured. It reads until its standard input closes and writes
one line per read: ``<start, time.monotonic()> <seconds> <status or error>``. A server gone for
good (``GIVE_UP`` failures in a row, each one written) ends it too, so a test that failed before
closing it leaves no reader knocking on a dead port through the tests after it.
"""

from __future__ import annotations

import http.client
import sys
import threading
import time
from urllib.parse import urlsplit

WARM = 20
GIVE_UP = 100


def main(url: str, token: str, path: str, pause: float) -> None:
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    where = urlsplit(url)
    headers = {"Authorization": f"Token {token}"}

    def connect() -> http.client.HTTPConnection:
        return http.client.HTTPConnection(where.hostname, where.port, timeout=30)

    connection = connect()
    done = failed = 0
    while not stop.is_set() and failed < GIVE_UP:
        started = time.monotonic()
        try:
            connection.request("GET", path, headers=headers)
            answer = connection.getresponse()
            answer.read()
            outcome = str(answer.status)
            failed = 0
        except (OSError, http.client.HTTPException) as exc:
            failed += 1
            outcome = f"{type(exc).__name__}:{exc}".replace("\n", " ")
            connection.close()
            connection = connect()
        took = time.monotonic() - started
        done += 1
        if done > WARM:  # the first reads open the connection and warm the server's caches
            print(f"{started:.6f} {took:.6f} {outcome}", flush=True)
        time.sleep(pause)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]))
