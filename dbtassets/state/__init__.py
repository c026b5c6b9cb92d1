"""The state store (SQLite or PostgreSQL), its backends, the records it writes, leases."""
