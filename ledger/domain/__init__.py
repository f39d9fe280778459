"""The business: money, commission plans, the team tree and the life of an order.

Nothing here imports gRPC or SQL; aggregates are event-sourced with the eventsourcing library.
"""
