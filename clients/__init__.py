"""Client side of the ledger: the SDK (sdk.py) and the storefront simulator (simulator.py)."""
