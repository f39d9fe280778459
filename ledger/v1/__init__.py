"""Generated from proto/ledger/v1 by proto/generate.py. Do not edit."""
