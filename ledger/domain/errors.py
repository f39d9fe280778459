"""The ways a command can be refused. Each maps to exactly one gRPC status in the API layer."""

from __future__ import annotations


class LedgerError(Exception):
    """A command was refused; nothing was written."""

    reason = "LEDGER_ERROR"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason


class InvalidInput(LedgerError):
    """The request is malformed, whatever the state of the ledger (INVALID_ARGUMENT)."""

    reason = "INVALID_INPUT"

    def __init__(self, violations: list[tuple[str, str]], *, reason: str | None = None) -> None:
        self.violations = violations
        super().__init__("; ".join(f"{field}: {why}" if field else why
                                   for field, why in violations), reason=reason)


class RuleViolation(LedgerError):
    """A business rule forbids the command in the present state (FAILED_PRECONDITION)."""

    reason = "RULE_VIOLATION"


class NotFound(LedgerError):
    """The command names something the ledger has never recorded (NOT_FOUND)."""

    reason = "NOT_FOUND"


class AlreadyExists(LedgerError):
    """The command would create something that already exists (ALREADY_EXISTS)."""

    reason = "ALREADY_EXISTS"


class AccessDenied(LedgerError):
    """The caller may not touch this thing, e.g. a storefront asking to pay out a supplier
    (PERMISSION_DENIED)."""

    reason = "ACCESS_DENIED"


class Conflict(LedgerError):
    """Another writer changed the same thing at the same time; retrying is safe (ABORTED)."""

    reason = "CONCURRENT_WRITE"


def check(violations: list[tuple[str, str]]) -> None:
    """Raises InvalidInput when any field violation was found."""
    if violations:
        raise InvalidInput(violations)
