"""Client side of the ledger: the SDK (sdk.py) and the storefront simulator (simulator.py)."""

# Installed as ``ledger.clients`` (setup.py); imported as a top-level ``clients``, which a run
# from the repository's folder could do by accident, its modules would be loaded twice, each
# copy with its own state.
if __name__ != "ledger.clients":
    raise ImportError(f"import ledger.clients, not {__name__}")
