"""The `yy` request signature of the Hailuo web page (see the protocol reference, section 2)."""

from __future__ import annotations

import hashlib
from urllib.parse import quote

# encodeURIComponent leaves these unescaped; matching it keeps our signature equal to the page's.
_URI_COMPONENT_SAFE = "-_.!~*'()"


def md5_hex(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def body_to_yy(character_id: str, msg_content: str, chat_id: str, form: str = "") -> str:
    flat = msg_content.replace("\r\n", "").replace("\n", "").replace("\r", "")
    return md5_hex(character_id) + md5_hex(flat) + md5_hex(chat_id) + md5_hex(form)


def yy(path_and_query: str, body_digest: str, timestamp: int | str) -> str:
    encoded = quote(path_and_query, safe=_URI_COMPONENT_SAFE)
    return md5_hex(f"{encoded}_{body_digest}{md5_hex(str(timestamp))}ooui")
