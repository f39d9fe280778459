"""Signed tree heads: Ed25519 over (platform, tree size, root, time, key id), as
docs/audit-format.md ("Signed tree heads") fixes the bytes.

The signing key lives in a file (PEM, PKCS#8) that `ledger audit keygen` writes; its public
half is what the platform publishes, and all an auditor needs to trust. The key id names a
public key by its hash, so a head says which key signed it and keys can be rotated (every
key that ever signed stays published).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

HEAD_DOMAIN = b"s2b2c-ledger-tree-head/v1\x00"


class KeyFileError(ValueError):
    """The signing key file cannot be used."""


def key_id(public_key: bytes) -> str:
    """The first 16 hex digits of SHA-256 of the raw 32-byte public key."""
    return hashlib.sha256(public_key).hexdigest()[:16]


def parse_public_key(text: str) -> bytes:
    """A published Ed25519 public key as people pass it on: base64 or hex of its raw 32
    bytes, a PEM public key, or the JSON `ledger audit keygen` / `public-key` print. Raises
    ``KeyFileError`` naming what it is not (never echoing a private key it was given)."""
    text = text.strip()
    if "PRIVATE KEY" in text:
        raise KeyFileError("that is a private key; give its public key "
                           "(`ledger audit public-key --file …` prints it)")
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text.encode())
        except ValueError as error:
            raise KeyFileError(f"not a PEM public key ({error})") from None
        if not isinstance(key, Ed25519PublicKey):
            raise KeyFileError("not an Ed25519 public key")
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if text.startswith("{"):
        try:
            text = str(json.loads(text)["public_key"])
        except (ValueError, KeyError, TypeError):
            raise KeyFileError("JSON without a \"public_key\"") from None
    raw: bytes | None = None
    if len(text) == 64:
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raw = None
    if raw is None:
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise KeyFileError(f"{text[:60]!r} is neither base64 nor hex of an Ed25519 "
                               "public key") from None
    if len(raw) != 32:
        raise KeyFileError(f"an Ed25519 public key is 32 bytes, not {len(raw)}")
    return raw


@dataclass(frozen=True)
class TreeHead:
    platform: str
    tree_size: int
    root: bytes
    timestamp_us: int
    key_id: str
    signature: bytes = b""
    reason: str = ""  # why it was signed: "close 2026-11-21", "on demand"

    def message(self) -> bytes:
        """The bytes the signature covers."""
        platform = self.platform.encode()
        kid = self.key_id.encode("ascii")
        return b"".join((
            HEAD_DOMAIN,
            struct.pack(">H", len(platform)), platform,
            struct.pack(">Q", self.tree_size),
            self.root,
            struct.pack(">q", self.timestamp_us),
            struct.pack(">H", len(kid)), kid,
        ))


def verify_head(head: TreeHead, public_keys: dict[str, bytes]) -> bool:
    """Whether ``head`` carries a valid signature by the key it names, among ``public_keys``
    (key id → raw public key)."""
    raw = public_keys.get(head.key_id)
    if raw is None or key_id(raw) != head.key_id or len(head.root) != 32:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(raw).verify(head.signature, head.message())
    except (InvalidSignature, ValueError):
        return False
    return True


class Signer:
    """Signs tree heads with one Ed25519 key."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.key_id = key_id(self.public_key)

    def sign(self, platform: str, tree_size: int, root: bytes, timestamp_us: int,
             reason: str = "") -> TreeHead:
        unsigned = TreeHead(platform, tree_size, root, timestamp_us, self.key_id, b"", reason)
        return TreeHead(platform, tree_size, root, timestamp_us, self.key_id,
                        self._key.sign(unsigned.message()), reason)

    @classmethod
    def generate(cls) -> Signer:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: Path) -> Signer:
        try:
            data = path.read_bytes()
        except OSError as error:
            raise KeyFileError(f"{path}: {error.strerror or error}") from None
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as error:
            raise KeyFileError(f"{path}: not a PEM private key ({error})") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyFileError(f"{path}: not an Ed25519 key")
        return cls(key)

    def save(self, path: Path) -> None:
        """Writes the private key (PEM, PKCS#8), readable by its owner only; never
        overwrites an existing file (a lost signing key cannot be made again). The file
        appears whole or not at all (written aside, then linked into place), so a process
        starting at the same moment never reads half a key."""
        pem = self._key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())
        path.parent.mkdir(parents=True, exist_ok=True)
        aside = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        try:
            os.link(aside, path)
        except FileExistsError:
            raise KeyFileError(f"{path} exists already; it is never overwritten") from None
        finally:
            aside.unlink()
