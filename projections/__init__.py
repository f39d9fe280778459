"""Read models built from the event log: balances per account and currency, the team tree and
team leaders' monthly numbers.

``runner.py`` follows the log and applies it in batches, each in one transaction with the
position reached; ``reader.py`` answers the API's queries.
"""
