"""Amounts at the SDK's edge: ``decimal.Decimal`` in the currency's unit (15.99 CNY, 500 JPY)
for people and callers, integer minor units (1599, 500) on the wire and inside the ledger.

The exponent is the currency's ISO 4217 one, read from ``iso4217`` through the domain's own
``minor_exponent`` (the same table the server checks currencies against), so the SDK and the
ledger never disagree on how many digits a currency has.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from ledger.domain.money import minor_exponent


class SubunitAmountError(ValueError):
    """An amount finer than the currency's minor unit (12.345 CNY, 1.5 JPY): refused rather
    than rounded, since rounding someone's money is a decision the caller must make."""


def to_minor(amount: Decimal | int | str, currency: str) -> int:
    """``Decimal("15.99")`` CNY → 1599; ``Decimal("500")`` JPY → 500.

    Floats are refused (they cannot hold 15.99 exactly); so is a value with more digits after
    the point than the currency has, or one that is not a finite number."""
    if isinstance(amount, float | bool):
        raise TypeError(f"amounts are Decimal, int or str, never {type(amount).__name__}")
    try:
        value = Decimal(amount)
    except InvalidOperation:
        raise ValueError(f"{amount!r} is not an amount") from None
    if not value.is_finite():
        raise ValueError(f"{amount!r} is not an amount")
    minor = value.scaleb(minor_exponent(currency))
    if minor != minor.to_integral_value():
        raise SubunitAmountError(
            f"{amount} {currency} is finer than the currency's minor unit "
            f"({minor_exponent(currency)} digits after the point)"
        )
    return int(minor)


def to_decimal(minor: int, currency: str) -> Decimal:
    """1599 CNY → ``Decimal("15.99")``; 500 JPY → ``Decimal("500")``; always with exactly the
    currency's digits, so ``str()`` of it is what a person reads."""
    exponent = minor_exponent(currency)
    return Decimal(minor).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent))


def format_amount(minor: int, currency: str) -> str:
    """Minor units as a person reads them: 9999 CNY → '99.99', -1599 → '-15.99', 500 JPY → '500'."""
    return str(to_decimal(minor, currency))
