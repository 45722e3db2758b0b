"""Outbound HTTP that cannot be steered at our own networks (server-side request forgery).

Registry dereferences URLs found in credentials and notify posts to URLs employers give it:
both are addresses chosen by someone else. The guard sits where httpcore opens a TCP
connection: it resolves the host name once, refuses the connection if ANY answer is not a
public unicast address, and connects to an address from that same answer. A name whose DNS
answer changes between a check and the connect (rebinding) therefore cannot reach inside:
there is no second lookup. TLS SNI, certificate verification and the Host header still use
the name from the URL, since httpcore takes those from the request, not from the socket.
Every redirect hop opens its own connection, so each hop is checked the same way.
"""

from __future__ import annotations

import asyncio
import socket
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from urllib.parse import urlsplit

import httpcore
import httpx

Address = IPv4Address | IPv6Address
# (host name, port) -> the addresses it resolves to, as strings.
Resolve = Callable[[str, int], Awaitable[list[str]]]

# Beyond what the stdlib flags (is_private etc. changed between 3.11 patch releases): every
# range that is not routable public unicast, written out so the rule does not drift.
_NOT_PUBLIC = tuple(ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
    "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    "::/96", "::1/128", "64:ff9b:1::/48", "100::/64", "2001::/32", "2001:db8::/32",
    "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
))
_NAT64 = ip_network("64:ff9b::/96")


class BlockedDestination(ValueError):
    """The URL points, or resolves, somewhere outbound requests must not go."""


class ResponseTooLarge(ValueError):
    pass


def _embedded_ipv4(address: Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, 6to4, NAT64): it is what gets reached."""
    if not isinstance(address, IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: Address) -> bool:
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        return is_public(embedded)
    if isinstance(address, IPv6Address) and address.scope_id:
        return False
    flagged = (address.is_private or address.is_loopback or address.is_link_local
               or address.is_multicast or address.is_reserved or address.is_unspecified)
    return not flagged and address.is_global and not any(address in n for n in _NOT_PUBLIC)


@dataclass(frozen=True)
class Policy:
    """Where outbound requests may go. `allow_loopback` is for local stacks and tests only
    (their receivers listen on 127.0.0.1); other private ranges stay refused even then."""

    allow_loopback: bool = False

    def permits(self, address: Address) -> bool:
        if is_public(address):
            return True
        unwrapped = _embedded_ipv4(address) or address
        return self.allow_loopback and unwrapped.is_loopback

    def permits_scheme(self, scheme: str, host: str) -> bool:
        """https everywhere; plain http only to a loopback address literal, when allowed."""
        if scheme == "https":
            return True
        if scheme != "http" or not self.allow_loopback:
            return False
        try:
            return ip_address(host).is_loopback
        except ValueError:
            return False


STRICT = Policy()  # production: public addresses, https


async def system_resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def vetted_addresses(host: str, port: int, policy: Policy,
                           resolve: Resolve = system_resolve,
                           resolve_seconds: float | None = None) -> list[str]:
    """The addresses `host` resolves to, all of them allowed by `policy`, or an exception."""
    try:
        addresses = [str(ip_address(host))]
    except ValueError:
        try:
            addresses = await asyncio.wait_for(resolve(host, port), resolve_seconds)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
    if not addresses:
        raise httpcore.ConnectError(f"{host} resolves to no address")
    refused = [a for a in addresses if not policy.permits(ip_address(a))]
    if refused:
        raise BlockedDestination(f"refusing to connect to {host}: it resolves to "
                                 f"{refused[0]}, which is not a public address")
    return addresses


async def url_problem(url: str, policy: Policy, resolve: Resolve = system_resolve,
                      resolve_seconds: float = 3.0) -> str | None:
    """Why `url` cannot be a destination now, or None: for a clear answer when it is
    registered. Connections are checked again when they open, since DNS answers change."""
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        return "the URL has no host"
    if not policy.permits_scheme(parts.scheme, host):
        return "only https URLs are allowed"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        await vetted_addresses(host, port, policy, resolve, resolve_seconds)
    except BlockedDestination:
        return f"{host} is or resolves to an address that is not public"
    except (httpcore.ConnectError, httpcore.ConnectTimeout):
        return f"{host} does not resolve"
    return None


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to addresses the policy allows."""

    def __init__(self, policy: Policy, resolve: Resolve | None = None,
                 inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.policy = policy
        self._resolve = resolve or system_resolve
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int,
                          timeout: float | None = None,  # noqa: ASYNC109 - httpcore's
                          local_address: str | None = None,
                          socket_options: typing.Iterable[typing.Any] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        addresses = await vetted_addresses(host, port, self.policy, self._resolve, timeout)
        failure: Exception | None = None
        for address in addresses:  # the pinned answer, in resolver order
            try:
                return await self._inner.connect_tcp(address, port, timeout=timeout,
                                                     local_address=local_address,
                                                     socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(self, path: str,
                                  timeout: float | None = None,  # noqa: ASYNC109
                                  socket_options: typing.Iterable[typing.Any] | None = None,
                                  ) -> httpcore.AsyncNetworkStream:
        raise BlockedDestination("outbound requests do not use unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (request mapping, errors, instrumentation) over a pool that
    uses the guarded backend. httpx has no network-backend parameter, so the pool it built
    is replaced by an equal one that has it."""

    def __init__(self, backend: GuardedBackend, limits: httpx.Limits | None = None) -> None:
        limits = limits or httpx.Limits(max_connections=50, max_keepalive_connections=10)
        super().__init__(trust_env=False, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(), max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry, network_backend=backend)


def guarded_client(policy: Policy, *, timeout: httpx.Timeout | float = 5.0,
                   follow_redirects: bool = False, max_redirects: int = 3,
                   resolve: Resolve | None = None,
                   inner: httpcore.AsyncNetworkBackend | None = None) -> httpx.AsyncClient:
    """An AsyncClient for URLs someone else chose. No proxies from the environment (a proxy
    would do the resolving and defeat the pin), no compression (the size cap counts what we
    hold), and the scheme rule checked on every hop, redirects included."""

    async def check_scheme(request: httpx.Request) -> None:
        if not policy.permits_scheme(request.url.scheme, request.url.host):
            raise BlockedDestination(f"refusing to fetch {request.url}: only https URLs")

    return httpx.AsyncClient(
        transport=GuardedTransport(GuardedBackend(policy, resolve, inner)), timeout=timeout,
        follow_redirects=follow_redirects, max_redirects=max_redirects, trust_env=False,
        headers={"accept-encoding": "identity"}, event_hooks={"request": [check_scheme]})


@dataclass(frozen=True)
class Fetched:
    status_code: int
    headers: httpx.Headers
    content: bytes
    url: str


async def fetch(client: httpx.AsyncClient, method: str, url: str, *, max_bytes: int,
                total_seconds: float, truncate: bool = False, **kwargs: typing.Any) -> Fetched:
    """One request with a cap on the body and on the whole exchange's time (httpx's timeouts
    are per read: a server dripping a byte a second would never trip them). Over the cap the
    body is refused, or with `truncate` cut (when only the status matters)."""
    try:
        async with asyncio.timeout(total_seconds):
            async with client.stream(method, url, **kwargs) as response:
                body = await _read_capped(response, max_bytes, truncate)
                return Fetched(response.status_code, response.headers, body, str(response.url))
    except TimeoutError as exc:
        raise TimeoutError(f"{url} took longer than {total_seconds:g} s") from exc


async def _read_capped(response: httpx.Response, max_bytes: int, truncate: bool) -> bytes:
    declared = response.headers.get("content-length", "")
    if not truncate and declared.isdigit() and int(declared) > max_bytes:
        raise ResponseTooLarge(f"{response.url} is larger than {max_bytes} bytes")
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > max_bytes:
            if truncate:
                return bytes(body[:max_bytes])
            raise ResponseTooLarge(f"{response.url} is larger than {max_bytes} bytes")
    return bytes(body)
