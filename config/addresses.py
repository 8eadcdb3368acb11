"""Where Earshot may send a person's browser, and where its server may fetch from.

Imported by models: nothing here may import an app's models.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

WEB_SCHEMES = ("http", "https")


def web_address(url: str) -> str:
    """`url` if it is an http(s) address, else "": what a link to a platform may point at.

    Platforms send the addresses of posts and profiles; one saying `javascript:...` must not
    become a link a click runs.
    """
    if not url:
        return ""
    return url if urlsplit(url.strip()).scheme.lower() in WEB_SCHEMES else ""


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_multicast
        or address.is_unspecified
    )


def _addresses_of(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, in the resolver's order of preference; [] when it
    does not resolve (now)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return list(dict.fromkeys(info[4][0] for info in infos))


def _not_public(addresses: list[str]) -> list[str]:
    return [
        address
        for address in addresses
        if not _is_public(ipaddress.ip_address(address.split("%", 1)[0]))
    ]


def _refusal(host: str, private: list[str]) -> str:
    return (
        f"{host} resolves to {', '.join(sorted(private))}, a private, loopback, link-local or "
        "reserved address. Earshot fetches only public addresses, unless the source's "
        '"Allow private address" is ticked (for a feed on your own network).'
    )


def fetch_address_problem(url: str, *, allow_private_address: bool = False) -> str | None:
    """Why Earshot must not fetch `url`, in words for the admin who set it; None if it may.

    Only http and https are fetched. Unless `allow_private_address`, the host must resolve to
    public addresses only: a feed's address is typed by a person, and must not point Earshot's
    server at itself or its private network (the cloud metadata service at 169.254.169.254,
    the database, an internal admin page). A host that does not resolve is not refused here:
    fetching it will fail and say so.

    This is the check made when an address is saved. At fetch time a name may resolve
    differently (DNS rebinding): fetches connect to an address of `public_address_for`.
    """
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in WEB_SCHEMES:
        return f"{url} is not a web address: only http:// and https:// addresses are fetched."
    host = parts.hostname
    if not host:
        return f"{url} names no host."
    if allow_private_address:
        return None
    try:
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError:
        return f"{url} has an invalid port."
    private = _not_public(_addresses_of(host, port))
    return _refusal(host, private) if private else None


class AddressRefused(Exception):
    """The host resolves to an address Earshot must not connect to; the message says why."""


def public_address_for(host: str, port: int) -> str | None:
    """The address to connect to for `host`: resolved once, here, and returned only if every
    address the name has is public. The caller connects to this address itself (keeping the
    name for the Host header and TLS), so a name that answers a public address to the check
    and a private one to the connection (DNS rebinding) cannot steer the request inside.

    Raises AddressRefused naming a private address; None when the name does not resolve.
    """
    addresses = _addresses_of(host, port)
    private = _not_public(addresses)
    if private:
        raise AddressRefused(_refusal(host, private))
    return addresses[0] if addresses else None
