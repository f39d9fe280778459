"""Sealing payees' identities, so the log never holds a name or an ID number in clear.

A vault holds named keys (a JSON file: ``{"current": "k1", "keys": [{"id": "k1", "key":
"<base64 of 64 random bytes>"}]}``); it seals with the current one and opens with whichever
key an entry names, so rotating means adding a key and making it current: the history stays
as written and still opens. Sealing is AES-SIV (RFC 5297, the ``cryptography`` package):
deterministic, so a retried request seals to the same bytes and still matches its
idempotency record, and authenticated with the platform and account as associated data, so
a sealed identity copied onto another payee does not open.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

from ledger.application.commands import Violations, check_id
from ledger.domain.payee import SealedIdentity

KEY_BYTES = 64  # AES-SIV with two 256-bit keys


class VaultError(ValueError):
    """The identity keys cannot be used, or an identity cannot be opened with them."""


@dataclass(frozen=True)
class Identity:
    """An individual's identity in clear: only finance ever sees it."""

    name: str
    id_type: str
    id_number: str

    def violations(self, field: str) -> Violations:
        """All three fields, each printable; an ID number of letters and digits."""
        v: Violations = []
        check_id(v, f"{field}.name", self.name)
        check_id(v, f"{field}.id_type", self.id_type)
        check_id(v, f"{field}.id_number", self.id_number)
        if self.id_number and not self.id_number.isalnum():
            v.append((f"{field}.id_number", "must be letters and digits only"))
        return v


class IdentityVault:
    def __init__(self, keys: dict[str, bytes], current: str) -> None:
        if current not in keys:
            raise VaultError(f"the current key {current!r} is not among the keys")
        for key_id, key in keys.items():
            if len(key) != KEY_BYTES:
                raise VaultError(f"key {key_id!r} must be {KEY_BYTES} bytes, base64-encoded")
        self._ciphers = {key_id: AESSIV(key) for key_id, key in keys.items()}
        self.current = current

    def seal(self, identity: Identity, *, platform_id: str, account: str) -> SealedIdentity:
        data = json.dumps(
            [identity.name, identity.id_type, identity.id_number], ensure_ascii=False
        ).encode()
        sealed = self._ciphers[self.current].encrypt(data, _bound_to(platform_id, account))
        return SealedIdentity(self.current, base64.b64encode(sealed).decode())

    def open(self, identity: SealedIdentity, *, platform_id: str, account: str) -> Identity:
        cipher = self._ciphers.get(identity.key_id)
        if cipher is None:
            raise VaultError(
                f"the identity of {account} was sealed with key "
                f"{identity.key_id!r}, which the identity keys no longer hold"
            )
        try:
            data = cipher.decrypt(
                base64.b64decode(identity.sealed), _bound_to(platform_id, account)
            )
        except (InvalidTag, binascii.Error, ValueError):
            raise VaultError(
                f"the identity of {account} does not open with key {identity.key_id!r}"
            ) from None
        name, id_type, id_number = json.loads(data)
        return Identity(name, id_type, id_number)

    @classmethod
    def from_json(cls, text: str) -> IdentityVault:
        try:
            data = json.loads(text)
            keys = {str(k["id"]): base64.b64decode(k["key"], validate=True) for k in data["keys"]}
            current = str(data["current"])
        except (ValueError, KeyError, TypeError, binascii.Error) as error:
            raise VaultError(
                f'not identity keys ({{"current": id, "keys": [{{"id", "key"}}…]}}): {error}'
            ) from None
        return cls(keys, current)


def _bound_to(platform_id: str, account: str) -> list[bytes]:
    return [platform_id.encode(), account.encode()]


def new_key_entry(key_id: str) -> dict[str, str]:
    return {"id": key_id, "key": base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()}


def load_or_create(path: Path) -> IdentityVault:
    """The vault in ``path``, made there (owner-readable only) with one fresh key when
    absent, as the audit signing key is."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = new_key_entry("k1")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"current": "k1", "keys": [entry]}, out, indent=2)
            out.write("\n")
    try:
        return IdentityVault.from_json(path.read_text())
    except OSError as error:
        raise VaultError(error.strerror or str(error)) from None


def add_key(path: Path, key_id: str) -> None:
    """Rotation: a new key, made current; the older ones stay to open what they sealed."""
    data = json.loads(path.read_text()) if path.exists() else {"keys": []}
    if any(k.get("id") == key_id for k in data.get("keys", [])):
        raise VaultError(f"{path} already holds a key {key_id!r}")
    data["keys"].append(new_key_entry(key_id))
    data["current"] = key_id
    IdentityVault.from_json(json.dumps(data))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    path.chmod(0o600)


class VaultFile:
    """The vault of ``LEDGER_IDENTITY_KEYS_FILE``: read at start when the file exists (a file
    that cannot be used stops the server there), made on first use when it does not, so a
    server that never meets a payee writes no key."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self._vault = IdentityVault.from_json(self.path.read_text()) if self.path.exists() else None

    def reload(self) -> None:
        """Reads the file again (after ``ledger identity-keys add``): sealing moves to the
        new current key; every older key still opens what it sealed."""
        self._vault = IdentityVault.from_json(self.path.read_text())

    def get(self) -> IdentityVault:
        if self._vault is None:
            self._vault = load_or_create(self.path)
        return self._vault
