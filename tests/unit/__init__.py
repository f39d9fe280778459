"""Unit tests: the domain's rules alone, without gRPC or a database."""
