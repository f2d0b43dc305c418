"""The client's address, scheme and host, as a trusted reverse proxy forwards them.

Behind nginx or a load balancer the TCP peer is the proxy. When, and only when, that peer
is in TRUSTED_PROXIES, the middleware here reads the proxy's forwarding headers and hands
the rest of the app a request whose `remote`, `scheme` and `host` are the client's, so rate
limits, the access log and the websocket Origin check see the client. A peer outside the
list is the client itself, and whatever forwarding headers it sends are ignored.

Only one family of headers is read (PROXY_HEADERS): a proxy appends to the one it manages
and passes the other through from the client untouched, so reading both would let a
client write its own address.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from server.config import IPNetwork, ProxyHeaders
from server.logs import CLIENT_ADDRESS_KEY

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# host[:port] as a browser sends it: a name, an IPv4 address or a bracketed IPv6 address.
_HOST = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~-]+)(?::[0-9]{1,5})?$")
_SCHEMES = ("http", "https")


@dataclass(frozen=True, slots=True)
class Hop:
    """One hop of the forwarding headers: whom a proxy forwarded for, over what, to which host."""

    address: IPAddress | None
    proto: str | None = None
    host: str | None = None


@dataclass(frozen=True, slots=True)
class Client:
    """What the client used, as far as the trusted proxies tell."""

    remote: str
    scheme: str
    host: str


def parse_address(value: str) -> IPAddress | None:
    """The address in a forwarding entry (`1.2.3.4`, `1.2.3.4:80`, `[::1]:80`, `::1`).

    None for `unknown`, an obfuscated `_name` and anything else that is not an address.
    An IPv4-mapped IPv6 address is read as the IPv4 address it carries.
    """
    text = value.strip().strip('"')
    if text.startswith("["):
        text, bracket, port = text[1:].partition("]")
        if not bracket or not (port == "" or (port[:1] == ":" and port[1:].isdigit())):
            return None
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped if isinstance(mapped, ipaddress.IPv4Address) else address


def is_trusted(address: IPAddress, trusted: Sequence[IPNetwork]) -> bool:
    return any(address in network for network in trusted)


def client_index(chain: Sequence[IPAddress | None], trusted: Sequence[IPNetwork]) -> int:
    """Which address of `chain` (the forwarded ones, then the peer) is the client's.

    The right-most address that is not a trusted proxy: everything left of it was written
    by the client or by proxies nobody vouches for. When every address is trusted, the
    left-most one. An entry that is no address ends the walk at the trusted hop to its
    right, the nearest one known.
    """
    for index in range(len(chain) - 1, -1, -1):
        address = chain[index]
        if address is None:
            return min(index + 1, len(chain) - 1)
        if not is_trusted(address, trusted):
            return index
    return 0


def _items(request: web.BaseRequest, name: str) -> list[str]:
    """The comma-separated items of a header, over all its lines, left to right."""
    return [
        item.strip()
        for value in request.headers.getall(name, [])
        for item in value.split(",")
        if item.strip()
    ]


def _forwarded_hops(request: web.BaseRequest) -> list[Hop]:
    """RFC 7239 `Forwarded`: each element is one hop, with its own `proto` and `host`."""
    return [
        Hop(parse_address(element.get("for", "")), element.get("proto"), element.get("host"))
        for element in request.forwarded
    ]


def _x_forwarded_hops(request: web.BaseRequest) -> list[Hop]:
    """X-Forwarded-For's addresses. X-Forwarded-Proto and -Host name no hop: their last
    item, written by the proxy nearest to us, goes with every one."""
    protos, hosts = _items(request, hdrs.X_FORWARDED_PROTO), _items(request, hdrs.X_FORWARDED_HOST)
    proto, host = protos[-1] if protos else None, hosts[-1] if hosts else None
    addresses = [parse_address(item) for item in _items(request, hdrs.X_FORWARDED_FOR)]
    # Without X-Forwarded-For, one hop without an address: the peer is the client, and the
    # proxy's proto and host still count.
    return [Hop(address, proto, host) for address in addresses] or [Hop(None, proto, host)]


def see_through(
    request: web.BaseRequest, peer: IPAddress, trusted: Sequence[IPNetwork], mode: ProxyHeaders
) -> Client:
    """The client behind the trusted `peer`, from the forwarding headers of `mode`."""
    hops = _forwarded_hops(request) if mode == "forwarded" else _x_forwarded_hops(request)
    chain = [hop.address for hop in hops] + [peer]
    index = client_index(chain, trusted)
    # The hop naming the client was written by the proxy that accepted its connection,
    # which knows the scheme and host the client used.
    hop = hops[min(index, len(hops) - 1)] if hops else Hop(peer)
    proto = (hop.proto or "").lower()
    return Client(
        remote=str(chain[index]),
        scheme=proto if proto in _SCHEMES else request.scheme,
        host=hop.host if hop.host and _HOST.match(hop.host) else request.host,
    )


def client_request(
    request: web.Request, trusted: Sequence[IPNetwork], mode: ProxyHeaders
) -> web.Request:
    """`request` as its client made it: itself unless its peer is a trusted proxy."""
    peer = parse_address(request.remote or "")
    if peer is None or not is_trusted(peer, trusted):
        return request
    client = see_through(request, peer, trusted, mode)
    request[CLIENT_ADDRESS_KEY] = client.remote  # the access line gets this request
    return request.clone(remote=client.remote, scheme=client.scheme, host=client.host)


def forwarded_middleware(trusted: Sequence[IPNetwork], mode: ProxyHeaders) -> Middleware:
    """Serve a trusted proxy's requests as its client's: remote address, scheme and host."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        return await handler(client_request(request, trusted, mode))

    return middleware
