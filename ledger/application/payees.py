"""Recording a payee: paid as an individual (income tax withheld on each payout, identity
kept sealed) or as a business (paid gross, known by its tax id). DOMAIN.md, "Tax on
commission paid to individuals".

The identity arrives in clear and is stored only sealed: the sealing is the identity vault's
(ledger/adapters/identity_vault.py), handed in by whoever runs the use case, so the
application holds no key and names no adapter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ledger.application import commands as c
from ledger.application.ledger_app import Outcome
from ledger.application.steps import Steps
from ledger.domain.errors import InvalidInput, check
from ledger.domain.payee import INDIVIDUAL, Payee, SealedIdentity


class Identity(Protocol):
    """A person's identity in clear (the vault's ``Identity``)."""

    def violations(self, field: str) -> c.Violations: ...


async def record_payee(steps: Steps, caller: c.Caller, key: str, account: str, kind: str,
                       tax_id: str, identity: Identity | None,
                       seal: Callable[[Any], SealedIdentity]) -> tuple[Outcome, Payee]:
    """Records ``account`` as a payee of ``kind``. ``identity`` (None: none given) is
    checked and sealed with ``seal`` before anything is written: only an individual has
    one (a business is known by its tax id), and an identity missing a field or with an ID
    number of other than letters and digits is refused whole."""
    sealed = None
    if identity is not None:
        if kind != INDIVIDUAL:
            raise InvalidInput([("identity", "only an individual has an identity")])
        check(identity.violations("identity"))
        sealed = seal(identity)
    return await steps.write(caller, c.RecordPayee(key, account, kind, tax_id, sealed))
