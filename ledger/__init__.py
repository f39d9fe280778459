"""The settlement ledger for S2B2C social commerce: the write side.

``ledger.domain`` is the business (no gRPC, no SQL), ``ledger.application`` runs commands
against the event store with group commit, ``ledger.api`` serves them over gRPC, and
``ledger.v1`` is the code generated from ``proto/ledger/v1``.
"""
