"""`compaction` items: a conversation sealed by the gateway, opened only by the gateway.

`POST /v1/responses/compact` does not summarise (that would need a model call and lose the
RL token bundles): it seals the whole context, items and token bundles included, into one
`compaction` item whose `encrypted_content` is AES-256-GCM ciphertext under a server key,
bound to the caller's namespace (API key name) as associated data. A client can carry it
and send it back, never read, alter or forge it, and another key cannot open it. When the
item comes back in `input`, the gateway puts the sealed items in its place.

The key: `responses.compaction_key` (any secret string; its SHA-256 is the AES key), else
32 random bytes generated once into STATE_DIR/compaction.key (mode 0600). Every gateway of
a fleet must share it, or a compaction made by one cannot be opened by another.
"""

from __future__ import annotations

import base64
import hashlib
import os
import zlib
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.errors import InvalidRequest

PREFIX = "ggc1."  # gym-gateway compaction, format 1
_AAD = b"gym-gateway compaction v1|"
KEY_FILE = "compaction.key"


def load_key(secret: str | None, state_dir: Path) -> bytes:
    """The 32-byte AES key: from the configured secret, else the state dir's key file."""
    if secret:
        return hashlib.sha256(secret.encode()).digest()
    path = state_dir / KEY_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        state_dir.mkdir(parents=True, exist_ok=True)
        key = os.urandom(32)
        try:  # O_EXCL: of several workers starting at once, one writes and all read it
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raw = path.read_bytes()
        else:
            with os.fdopen(fd, "wb") as file:
                file.write(key)
            return key
    if len(raw) != 32:
        raise ValueError(f"{path} must hold 32 bytes (delete it to generate a new key)")
    return raw


class Sealer:
    """Seals and opens compaction items; the key is `key`, or read (or generated) by
    `load_key(secret, state_dir)` on first use, so a gateway that never compacts never
    writes a key file."""

    def __init__(
        self, key: bytes | None = None, secret: str | None = None, state_dir: Path | None = None
    ) -> None:
        self._key = key
        self._secret = secret
        self._state_dir = state_dir
        self._cipher: AESGCM | None = None

    @property
    def _aead(self) -> AESGCM:
        if self._cipher is None:
            key = self._key
            if key is None:
                assert self._state_dir is not None
                key = load_key(self._secret, self._state_dir)
            self._cipher = AESGCM(key)
        return self._cipher

    def seal(self, items: list[dict[str, Any]], namespace: str) -> str:
        nonce = os.urandom(12)
        plain = zlib.compress(orjson.dumps({"items": items}), 1)
        sealed = self._aead.encrypt(nonce, plain, _AAD + namespace.encode())
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, content: Any, namespace: str, where: str) -> list[dict[str, Any]]:
        """The items sealed in `content`; a 400 naming `where` if it is not ours to open."""
        bad = InvalidRequest(
            f"{where}.encrypted_content was not made by this gateway's /v1/responses/compact "
            "for this API key (or it was altered); send the compaction item back unchanged.",
            param=f"{where}.encrypted_content",
            code="invalid_encrypted_content",
        )
        if not isinstance(content, str) or not content.startswith(PREFIX):
            raise bad
        try:
            raw = base64.urlsafe_b64decode(content[len(PREFIX) :])
            plain = self._aead.decrypt(raw[:12], raw[12:], _AAD + namespace.encode())
            items = orjson.loads(zlib.decompress(plain))["items"]
        except (ValueError, InvalidTag, zlib.error, KeyError, TypeError):
            raise bad from None
        return items
