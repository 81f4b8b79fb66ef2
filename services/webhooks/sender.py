"""One webhook delivery over HTTP: POST the body to a checked ``Target`` and say what came back.

The request goes to the address ``ssrf.check_url`` approved, never to a fresh DNS answer: the URL
carries the IP, the ``Host`` header the name, and TLS sends and verifies the name (the
``sni_hostname`` extension). Redirects are not followed. ``send`` never raises for HTTP or network
trouble: its ``Outcome`` says what happened. Connections are pooled per TLS server name (and per
endpoint), so a connection verified for one tenant's name never carries another's request.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from services.webhooks.ssrf import Target

TIMEOUT = 15.0
MAX_RESPONSE_BYTES = 64 * 1024
EXCERPT_CHARS = 500
USER_AGENT = "MagicToolbox-Webhooks/1.0"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one delivery attempt got. ``status`` is None when no response came, and then
    ``error`` says why (``timeout``, ``connection refused: …``, ``tls error: …``, …); with a
    status, ``error`` is None and only the status decides (``ok`` is 2xx)."""

    status: int | None
    ok: bool
    latency_ms: float
    response_excerpt: str
    error: str | None
    retry_after: str | None  # the Retry-After header of a 429 or 503
    gone: bool  # 410: the endpoint says it will never take deliveries again


POOL_EXTENSION = "magictoolbox.pool"


async def send(
    target: Target,
    headers: dict[str, str],
    body: bytes,
    *,
    timeout: float = TIMEOUT,
    client: httpx.AsyncClient | None = None,
    pool: str = "",
) -> Outcome:
    """POST ``body`` with ``headers`` to ``target``, giving up after ``timeout`` seconds in
    all. ``client`` should come from ``make_client`` (shared by all deliveries of a worker);
    without one, a client is made and closed for this delivery alone. ``pool`` names the
    connection pool to use beside the TLS name (the dispatcher passes the endpoint's id)."""
    if client is None:
        async with make_client(timeout=timeout) as own:
            return await send(target, headers, body, timeout=timeout, client=own)

    request_headers = httpx.Headers(headers)
    request_headers.setdefault("user-agent", USER_AGENT)
    request_headers["host"] = target.authority
    # Compressed answers are not read: an excerpt is enough, and a small gzip can be huge.
    request_headers["accept-encoding"] = "identity"
    url = httpx.URL(
        scheme=target.scheme,
        host=target.address,
        port=target.port,
        raw_path=target.path_and_query.encode("ascii"),
    )
    extensions: dict[str, str] = {POOL_EXTENSION: pool}
    if target.scheme == "https":
        extensions["sni_hostname"] = target.host
    request = client.build_request(
        "POST",
        url,
        headers=request_headers,
        content=body,
        timeout=httpx.Timeout(timeout),
        extensions=extensions,
    )

    started = time.perf_counter()
    status: int | None = None
    retry_after: str | None = None
    received = bytearray()
    charset: str | None = None
    error: str | None = None
    try:
        # httpx's timeout bounds each read; this bounds the whole exchange (a slow drip too).
        async with asyncio.timeout(timeout):
            response = await client.send(request, stream=True, follow_redirects=False)
            try:
                status = response.status_code
                charset = response.charset_encoding
                if status in (429, 503):
                    retry_after = response.headers.get("retry-after")
                async for chunk in response.aiter_raw():
                    received += chunk
                    if len(received) >= MAX_RESPONSE_BYTES:
                        break
            finally:
                await response.aclose()
    except (TimeoutError, httpx.TimeoutException):
        error = "timeout"
    except httpx.HTTPError as exc:
        error = _describe(exc)
    except OSError as exc:
        error = f"network error: {exc}"
    latency_ms = (time.perf_counter() - started) * 1000
    if status is not None:
        error = None  # a failure while reading the body: the status still stands
    return Outcome(
        status=status,
        ok=status is not None and 200 <= status < 300,
        latency_ms=latency_ms,
        response_excerpt=_excerpt(bytes(received[:MAX_RESPONSE_BYTES]), charset),
        error=error,
        retry_after=retry_after,
        gone=status == 410,
    )


def _excerpt(data: bytes, charset: str | None) -> str:
    try:
        text = data.decode(charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        text = data.decode("utf-8", errors="replace")
    return text[:EXCERPT_CHARS]


def _describe(exc: httpx.HTTPError) -> str:
    causes: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(causes) < 10:
        causes.append(cause)
        cause = cause.__cause__ or cause.__context__
    detail = str(exc) or type(exc).__name__
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        return f"connection refused: {detail}"
    if any(isinstance(c, ssl.SSLError) for c in causes):
        return f"tls error: {detail}"
    if isinstance(exc, httpx.ConnectError):
        return f"connect error: {detail}"
    if isinstance(exc, httpx.ProtocolError):
        return f"protocol error: {detail}"
    if isinstance(exc, httpx.TransportError):
        return f"network error: {detail}"
    return f"http error: {detail}"


def make_client(
    *,
    timeout: float = TIMEOUT,
    ssl_context: ssl.SSLContext | None = None,
    connections_per_host: int = 8,
    max_hosts: int = 1024,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` for deliveries to many endpoints, to share and close at the
    end: no proxies or certificates from the environment, no redirects, a connection pool
    per TLS server name (see the module's docstring). ``ssl_context`` replaces the default
    trust store (certifi), for tests with their own certificate authority."""
    transport = PerNameTransport(
        ssl_context=ssl_context or httpx.create_ssl_context(trust_env=False),
        limits=httpx.Limits(
            max_connections=connections_per_host,
            max_keepalive_connections=connections_per_host,
            keepalive_expiry=30.0,
        ),
        max_names=max_hosts,
    )
    return httpx.AsyncClient(
        transport=transport,
        trust_env=False,
        follow_redirects=False,
        timeout=timeout,
        headers={"user-agent": USER_AGENT},
    )


class PerNameTransport(httpx.AsyncBaseTransport):
    """One httpx connection pool per TLS server name (``sni_hostname``; plain http shares
    one) and per caller-named pool, so a connection made for one name never carries a request
    for another. The least recently used idle pools are closed beyond ``max_names``."""

    def __init__(self, *, ssl_context: ssl.SSLContext, limits: httpx.Limits, max_names: int):
        self._ssl_context = ssl_context
        self._limits = limits
        self._max_names = max_names
        self._pools: OrderedDict[str, _Pool] = OrderedDict()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        name = ""
        if request.url.scheme == "https":
            name = request.extensions.get("sni_hostname") or request.url.host
        # Also one pool per caller-named pool (an endpoint): httpcore's pool slows down sharply
        # as the requests waiting on one pool grow, and an endpoint's slow answers then hold up
        # nobody else's connections.
        name = f"{name}|{request.extensions.pop(POOL_EXTENSION, '')}"
        pool = self._pools.pop(name, None) or _Pool(
            httpx.AsyncHTTPTransport(verify=self._ssl_context, trust_env=False, limits=self._limits)
        )
        self._pools[name] = pool  # now the most recently used
        pool.in_use += 1  # before evicting, so that this pool is never the one closed
        try:
            await self._evict()
            response = await pool.transport.handle_async_request(request)
        except BaseException:
            pool.in_use -= 1
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_Released(response.stream, pool),
            extensions=response.extensions,
        )

    async def _evict(self) -> None:
        while len(self._pools) > self._max_names:
            idle = next((name for name, pool in self._pools.items() if not pool.in_use), None)
            if idle is None:
                return
            await self._pools.pop(idle).transport.aclose()

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), OrderedDict()
        for pool in pools:
            await pool.transport.aclose()


class _Pool:
    __slots__ = ("in_use", "transport")

    def __init__(self, transport: httpx.AsyncHTTPTransport) -> None:
        self.transport = transport
        self.in_use = 0  # responses not yet closed


class _Released(httpx.AsyncByteStream):
    """A response body that tells its pool when it is closed."""

    def __init__(self, stream: httpx.AsyncByteStream, pool: _Pool) -> None:
        self._stream = stream
        self._pool: _Pool | None = pool

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        try:
            await self._stream.aclose()
        finally:
            if pool is not None:
                pool.in_use -= 1
