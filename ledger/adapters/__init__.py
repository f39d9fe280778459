"""The outer ring beside the API: SQL, encoding and keys (the event store's recorders, the audit
tables, the append-only guards, the transcoder, the identity vault). These import inward
(application, domain); the application reaches them only through application/ports.py."""
