"""Whose sale an order is (attribution), and the binding of customers to resellers (锁粉).

DOMAIN.md: an order is attributed to the reseller named on it; else to the customer's bound
reseller; else to none (all margin to the platform). A customer's first binding stands: the
first order naming a reseller binds an unbound customer to them, a storefront binding a
customer again to the same reseller changes nothing, and to another is refused (only an
admin rebinds). A reseller buying from their own link is a self-purchase, which a plan may
exclude from level-1 commission.

Pure functions of ids, so each rule is read and tested on its own; the handlers load the
binding and the seller, call these, and stage what they decide.
"""

from __future__ import annotations

from ledger.domain.errors import RuleViolation

NO_SELLER = ""  # an order attributed to no reseller: all margin to the platform
CUSTOMER_ALREADY_BOUND = "CUSTOMER_ALREADY_BOUND"


def attributed_seller(named_reseller_id: str, bound_reseller_id: str) -> str:
    """The seller an order is attributed to: the reseller named on it, else the customer's
    bound reseller ("" when unbound), else none."""
    return named_reseller_id or bound_reseller_id or NO_SELLER


def order_binds_customer(named_reseller_id: str, bound_reseller_id: str) -> bool:
    """Whether placing an order binds its customer to the reseller it names: only a customer
    bound to nobody yet (the first binding stands, whoever an order names later)."""
    return bool(named_reseller_id) and not bound_reseller_id


def first_binding_stands(customer_id: str, bound_reseller_id: str, reseller_id: str) -> bool:
    """Whether the customer's first binding stands against binding them to ``reseller_id``:
    True when they are bound to that reseller already (nothing to record), False when they
    are bound to nobody (this binding is the first). Bound to another reseller, the binding
    asked for is refused: only an admin rebinds."""
    if not bound_reseller_id:
        return False
    if bound_reseller_id != reseller_id:
        raise RuleViolation(
            f"customer {customer_id} is bound to {bound_reseller_id}; only an admin rebinds",
            reason=CUSTOMER_ALREADY_BOUND,
        )
    return True


def is_self_purchase(seller_customer_id: str, order_customer_id: str) -> bool:
    """A reseller buying through their own link: the seller was enrolled as the very
    customer who places the order. A seller enrolled from no customer never self-purchases."""
    return bool(seller_customer_id) and seller_customer_id == order_customer_id


def sponsor_of_new_reseller(named_sponsor_id: str, bound_reseller_id: str, *,
                            without_sponsor: bool) -> str:
    """The sponsor a new reseller enrols under ("" for none): the one the request names;
    else none if it asks for none; else, for a customer turning reseller, the reseller the
    customer is bound to (they usually join under the reseller they bought from)."""
    if named_sponsor_id:
        return named_sponsor_id
    if without_sponsor:
        return ""
    return bound_reseller_id
