"""Benchmarks: the ledger against its baselines, measured in one run on one machine.

    python -m bench            # short mode (under a minute)
    python -m bench --full     # full mode

See README.md, "Performance".
"""
