"""Read models built from the event log (balances, team trees).

The write side (``ledger``) records every order, refund and split as immutable events with
their postings; the projections that turn them into balances and team numbers are built
here (see the read-side issue). Until then, balances can be recomputed straight from the
events' postings, as ``tests/test_event_log.py`` does.
"""
