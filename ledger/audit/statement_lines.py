"""A closed day's statement lines as the replay draws them (opening, movements by kind,
closing), and how a statement's own lines differ from them, line by line or by the count and
digest of the lines that moved (docs/audit-format.md)."""

from __future__ import annotations

import hashlib

from ledger.audit.stored_json import Key, Line


def statement_lines(opening: dict[Key, int], moved: dict[Key, dict[str, int]]
                    ) -> dict[Key, Line]:
    """The lines a statement has: every key with an opening balance or a movement, its
    movements netted by kind (kinds that net to nothing left out)."""
    lines = {}
    for key in opening.keys() | moved.keys():
        kinds = {k: v for k, v in moved.get(key, {}).items() if v}
        first = opening.get(key, 0)
        if first or kinds:
            lines[key] = (first, kinds, first + sum(kinds.values()))
    return lines


def by_account(lines: dict[Key, Line]) -> dict[Key, Line]:
    """Lines per account and currency, every bucket together (bucket '')."""
    summed: dict[Key, Line] = {}
    for (account, currency, _), (opening, kinds, closing) in lines.items():
        key = (account, currency, "")
        was_opening, was_kinds, was_closing = summed.get(key, (0, {}, 0))
        merged = dict(was_kinds)
        for kind, amount in kinds.items():
            merged[kind] = merged.get(kind, 0) + amount
        summed[key] = (was_opening + opening, merged, was_closing + closing)
    return {key: (o, {k: v for k, v in kinds.items() if v}, c)
            for key, (o, kinds, c) in summed.items() if o or any(kinds.values())}


def moved_differences(day: str, stated: tuple[int, str], replayed: dict[Key, Line]
                      ) -> list[str]:
    """A paged statement's lines that moved (their count and digest) against the replay's."""
    moved = {key: line for key, line in replayed.items() if line[1]}
    count, digest = stated
    found = []
    if count != len(moved):
        found.append(f"{day}: the statement has {count} lines that moved, the replay "
                     f"{len(moved)}")
    if digest != lines_digest(moved):
        found.append(f"{day}: the digest of the lines that moved is {digest} in the "
                     f"statement, {lines_digest(moved)} replayed")
    return found


def lines_digest(lines: dict[Key, Line]) -> str:
    """SHA-256 over lines in key order, each ``account|currency|bucket|opening|
    kind=amount,…|closing`` with kinds in order (docs/audit-format.md)."""
    digest = hashlib.sha256()
    for (account, currency, bucket), (opening, kinds, closing) in sorted(lines.items()):
        moved = ",".join(f"{kind}={amount}" for kind, amount in sorted(kinds.items()))
        digest.update(f"{account}|{currency}|{bucket}|{opening}|{moved}|{closing}\n".encode())
    return digest.hexdigest()


def line_differences(day: str, key: Key, stated: Line | None, replayed: Line | None
                     ) -> list[str]:
    account, currency, bucket = key
    where = f"{day} {account} {currency}" + (f" {bucket}" if bucket else "")
    if stated is None:
        assert replayed is not None
        return [f"{where}: the statement has no line; the replay has opening {replayed[0]}, "
                f"closing {replayed[2]}"]
    if replayed is None:
        return [f"{where}: the statement has opening {stated[0]}, closing {stated[2]}; the "
                "replay has nothing"]
    found = []
    if stated[0] != replayed[0]:
        found.append(f"{where}: opening {stated[0]} in the statement, {replayed[0]} replayed")
    for kind in sorted(stated[1].keys() | replayed[1].keys()):
        said, done = stated[1].get(kind, 0), replayed[1].get(kind, 0)
        if said != done:
            found.append(f"{where}: {kind} {said} in the statement, {done} replayed")
    if stated[2] != replayed[2]:
        found.append(f"{where}: closing {stated[2]} in the statement, {replayed[2]} replayed")
    return found
