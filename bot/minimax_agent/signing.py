"""The web client's request signature (protocol reference §4): `x-timestamp`, `x-signature`, `yy`.

All three come from one clock reading, the same one the query's `unix` carries. The salt ships in
the web bundle; it is public by construction.
"""

from __future__ import annotations

import hashlib
from urllib.parse import quote

SALT = "I*7Cf%WZ#S&%1RlZJ&C2"


def md5_hex(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def encode_uri_component(text: str) -> str:
    """JavaScript's encodeURIComponent: A–Z a–z 0–9 - _ . ! ~ * ' ( ) stay, the rest is %XX."""
    return quote(text, safe="-_.!~*'()")


def x_signature(seconds: int, body: str) -> str:
    """md5(seconds + salt + body); a GET signs an empty body."""
    return md5_hex(f"{seconds}{SALT}{body}")


def yy(target: str, body: str | None, milliseconds: int) -> str:
    """md5(encodeURIComponent(target) + "_" + body + md5(ms) + "ooui"); a GET signs "{}".

    `target` is the path and query as sent: relative on the API host, the absolute URL for the
    stream host's message POST (§4.1: the sources disagree for the rest; this is the web app's)."""
    signed_body = body if body is not None else "{}"
    return md5_hex(f"{encode_uri_component(target)}_{signed_body}{md5_hex(str(milliseconds))}ooui")
