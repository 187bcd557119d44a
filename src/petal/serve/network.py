"""`petal serve` beyond this machine (`--host 0.0.0.0`): a phone on the same network opens
the page, so the server requires a token, as the review and label pages do, and says the
address to open on the phone (with a QR code when segno is installed).

On the loopback address the server answers without a token, as before: only this machine
reaches it. Elsewhere every request but /healthz and the icon needs the token: the page's
address carries it (?token=), the page sends it on with each request, and a script gives
it as the X-Petal-Token header or `Authorization: Bearer TOKEN`. It is random for each start,
or $PETAL_TOKEN (at least 16 characters) for a script that must know it in advance.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from urllib.parse import quote

from petal.errors import PetalError
from petal.serve.local_page import new_token

TOKEN_VARIABLE = "PETAL_TOKEN"
MIN_TOKEN_CHARS = 16


def is_loopback(host: str) -> bool:
    """Whether `host` is this machine alone: localhost, 127.0.0.0/8, ::1 (IPv4-mapped too)."""
    host = host.strip().strip("[]").lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:  # a host name: it may resolve to anything
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def chosen_token() -> str:
    """$PETAL_TOKEN, or a new random token; PetalError for one too short to keep anyone out."""
    token = os.environ.get(TOKEN_VARIABLE)
    if token is None:
        return new_token()
    if (len(token) < MIN_TOKEN_CHARS or not token.isascii() or not token.isprintable()
            or " " in token):
        raise PetalError(f"${TOKEN_VARIABLE} must be at least {MIN_TOKEN_CHARS} printable "
                         "ASCII characters without spaces (or unset: petal makes a random "
                         "one)")
    return token


def page_address(sock: socket.socket, token: str) -> str:
    """The address to open on another machine, the token in it escaped for a URL."""
    return f"{address_for_others(sock)}/?token={quote(token, safe='')}"


def address_for_others(sock: socket.socket) -> str:
    """The http address other machines open: the bound address, or for a wildcard one
    (0.0.0.0, ::) the address this machine reaches its network from (no packet is sent:
    connecting a UDP socket only picks the route), else its host name."""
    host, port = sock.getsockname()[:2]
    if ipaddress.ip_address(host).is_unspecified:
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed anywhere real
            host = probe.getsockname()[0]
        except OSError:  # no network route: the name is the best guess
            host = socket.gethostname()
        finally:
            probe.close()
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def qr_code(text: str) -> str | None:
    """`text` as a QR code drawn with terminal characters, None without segno."""
    try:
        import segno
    except ImportError:
        return None
    import io

    buffer = io.StringIO()
    segno.make(text, error="l").terminal(out=buffer, compact=True)
    return buffer.getvalue()
