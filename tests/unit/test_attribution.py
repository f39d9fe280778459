"""Attribution and customer bindings (锁粉), as DOMAIN.md states them: the reseller named on
the order, else the customer's bound reseller, else none; the first binding stands."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.attribution import (
    CUSTOMER_ALREADY_BOUND,
    NO_SELLER,
    attributed_seller,
    first_binding_stands,
    is_self_purchase,
    order_binds_customer,
    sponsor_of_new_reseller,
)
from ledger.domain.errors import RuleViolation

ids = st.text(alphabet="abcxyz", max_size=3)


def test_the_reseller_named_on_the_order_earns_it_even_from_a_customer_bound_elsewhere() -> None:
    assert attributed_seller("carol", "bob") == "carol"


def test_an_order_naming_no_reseller_goes_to_the_customers_bound_reseller() -> None:
    assert attributed_seller("", "bob") == "bob"


def test_an_order_naming_no_reseller_from_an_unbound_customer_has_no_seller() -> None:
    assert attributed_seller("", "") == NO_SELLER == ""


@given(named=ids, bound=ids)
def test_attribution_is_the_named_reseller_else_the_bound_one(named: str, bound: str) -> None:
    seller = attributed_seller(named, bound)
    assert seller == (named if named else bound)
    assert seller in (named, bound)


def test_the_first_order_naming_a_reseller_binds_an_unbound_customer() -> None:
    assert order_binds_customer("carol", "")


def test_a_later_order_naming_another_reseller_leaves_the_first_binding() -> None:
    assert not order_binds_customer("carol", "bob")
    assert not order_binds_customer("bob", "bob")


def test_an_order_naming_no_reseller_binds_nobody() -> None:
    assert not order_binds_customer("", "")


def test_binding_an_unbound_customer_is_recorded_as_their_first() -> None:
    assert first_binding_stands("c1", "", "carol") is False


def test_binding_again_to_the_same_reseller_changes_nothing() -> None:
    assert first_binding_stands("c1", "carol", "carol") is True


def test_binding_to_another_reseller_is_refused_only_an_admin_rebinds() -> None:
    with pytest.raises(RuleViolation) as refused:
        first_binding_stands("c1", "carol", "bob")
    assert refused.value.reason == CUSTOMER_ALREADY_BOUND
    assert "c1" in refused.value.message and "carol" in refused.value.message


def test_a_reseller_buying_as_the_customer_they_enrolled_from_is_a_self_purchase() -> None:
    assert is_self_purchase("c1", "c1")
    assert not is_self_purchase("c1", "c2")


def test_a_seller_enrolled_from_no_customer_never_self_purchases() -> None:
    assert not is_self_purchase("", "")
    assert not is_self_purchase("", "c1")


def test_a_customer_turning_reseller_joins_under_the_reseller_they_are_bound_to() -> None:
    assert sponsor_of_new_reseller("", "carol", without_sponsor=False) == "carol"


def test_a_sponsor_named_on_enrolment_wins_over_the_binding() -> None:
    assert sponsor_of_new_reseller("bob", "carol", without_sponsor=False) == "bob"


def test_an_enrolment_asking_for_no_sponsor_gets_none_whatever_the_binding() -> None:
    assert sponsor_of_new_reseller("", "carol", without_sponsor=True) == ""
