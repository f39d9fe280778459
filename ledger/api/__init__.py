"""The gRPC surface: authentication, translation between protobuf and commands, status codes.

No business rule lives here: a servicer turns a request into a command, hands it to the
application, and turns the answer (or the refusal) back into protobuf.
"""
