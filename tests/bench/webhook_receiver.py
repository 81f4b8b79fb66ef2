"""``python -m tests.bench.webhook_receiver PORT``: the webhook bench's receiving end.

A bare ASGI app under uvicorn, in its own process so it never competes with the sender for the
GIL: ``POST /<endpoint>`` answers 204 and remembers the ``webhook-id``; ``GET /counts`` returns
``{endpoint: [deliveries, distinct ids]}``. It does as little as a receiver can, so the figures
are the sender's.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from typing import Any

import orjson
import uvicorn

received: dict[str, int] = defaultdict(int)
ids: dict[str, set[bytes]] = defaultdict(set)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    path = scope["path"].strip("/")
    if scope["method"] == "GET" and path == "counts":
        body = orjson.dumps({name: [received[name], len(ids[name])] for name in received})
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
        return
    received[path] += 1
    for name, value in scope["headers"]:
        if name == b"webhook-id":
            ids[path].add(value)
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", lifespan="off")
