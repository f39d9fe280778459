"""API keys: each storefront, admin and finance client has its own bearer token.

Only SHA-256 hashes of keys are configured (a file or an environment variable holding JSON),
so a leaked configuration does not leak keys. A key belongs to one platform (tenant) and has
one role; the role decides which service it may call.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from pathlib import Path

STOREFRONT = "storefront"
ADMIN = "admin"
FINANCE = "finance"
AUDITOR = "auditor"  # reads everything of its platform (audit, reports, finance), writes nothing
ROLES = (STOREFRONT, ADMIN, FINANCE, AUDITOR)


class KeyConfigError(ValueError):
    """The key configuration cannot be used."""


@dataclass(frozen=True)
class ApiKey:
    name: str  # the principal: a storefront id, or an operator's name
    role: str
    platform: str
    sha256: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return "lk_" + secrets.token_urlsafe(32)


class KeyRing:
    def __init__(self, keys: list[ApiKey]) -> None:
        self._by_hash = {k.sha256: k for k in keys}
        names = [(k.platform, k.name) for k in keys]
        if len(set(names)) != len(names):
            raise KeyConfigError("two keys share a platform and name")
        for k in keys:
            if k.role == STOREFRONT and (not k.name or "/" in k.name):
                # Where the storefront is not implied (statements, movements) an order is
                # named <storefront>/<order id>: the first "/" must end the storefront.
                raise KeyConfigError(f"key {k.name!r}: a storefront's name must be "
                                     "non-empty and without '/'")

    def __len__(self) -> int:
        return len(self._by_hash)

    def authenticate(self, token: str) -> ApiKey | None:
        return self._by_hash.get(hash_key(token))

    def platforms(self) -> list[str]:
        """The platforms a key can act for: the only ones this server can have written."""
        return sorted({k.platform for k in self._by_hash.values()})

    @classmethod
    def from_json(cls, text: str) -> KeyRing:
        try:
            data = json.loads(text)
            entries = data["keys"] if isinstance(data, dict) else data
            keys = [
                ApiKey(e["name"], e["role"], e["platform"], e["sha256"].lower()) for e in entries
            ]
        except KeyError as error:
            raise KeyConfigError(f"every key needs name, role, platform and sha256; one has "
                                 f"no {error}") from None
        except (ValueError, TypeError, AttributeError) as error:
            raise KeyConfigError(f"API keys are not JSON of the expected form: {error}") from None
        for k in keys:
            if k.role not in ROLES:
                raise KeyConfigError(f"key {k.name}: role must be one of {', '.join(ROLES)}")
            if len(k.sha256) != 64:
                raise KeyConfigError(f"key {k.name}: sha256 must be 64 hex digits")

        return cls(keys)

    @classmethod
    def load(cls, *, file: str = "", inline: str = "") -> KeyRing:
        """Keys from LEDGER_API_KEYS_FILE and/or LEDGER_API_KEYS (both may be set)."""
        keys: list[ApiKey] = []
        if file:
            keys += list(_from_setting("LEDGER_API_KEYS_FILE", file, read(Path(file)))
                         ._by_hash.values())
        if inline:
            keys += list(_from_setting("LEDGER_API_KEYS", "…", inline)._by_hash.values())
        return cls(keys)


def read(path: Path, setting: str = "LEDGER_API_KEYS_FILE") -> str:
    """The keys file's text; a file that cannot be read is a KeyConfigError naming it."""
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        why = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise KeyConfigError(f"{setting}={path}: {why}") from None


def _from_setting(setting: str, shown: str, text: str) -> KeyRing:
    try:
        return KeyRing.from_json(text)
    except KeyConfigError as error:
        raise KeyConfigError(f"{setting}={shown}: {error}") from None


def add_key_to_file(path: Path, *, name: str, role: str, platform: str) -> str:
    """Creates a key, stores its hash in ``path`` and returns the key (shown only once)."""
    if role not in ROLES:
        raise KeyConfigError(f"role must be one of {', '.join(ROLES)}")
    try:
        data = json.loads(read(path, "--file")) if path.exists() else {"keys": []}
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise KeyConfigError(f"--file={path}: not a keys file (JSON with a \"keys\" list)")
    key = new_key()
    data["keys"].append({"name": name, "role": role, "platform": platform, "sha256": hash_key(key)})
    KeyRing.from_json(json.dumps(data))  # refuse to write a file that would not load
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2) + "\n")
    except OSError as error:
        raise KeyConfigError(f"--file={path}: {error.strerror}") from None
    return key
