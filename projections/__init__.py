"""Read models built from the event log: balances per account and currency, the team tree and
team leaders' monthly numbers.

``runner.py`` follows the log and applies it in batches, each in one transaction with the
position reached; ``reader.py`` answers the API's queries.
"""

# Installed as ``ledger.projections`` (setup.py); imported as a top-level ``projections``,
# which a run from the repository's folder could do by accident, its modules would be loaded
# twice, each copy with its own state.
if __name__ != "ledger.projections":
    raise ImportError(f"import ledger.projections, not {__name__}")
