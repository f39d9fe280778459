"""Audit: the platforms' append-only trees, signed heads and proofs (docs/audit-format.md).

Pure computation, no gRPC and no SQL: the server keeps the trees with it, and
`ledger audit verify` checks an export with it, alone.
"""
