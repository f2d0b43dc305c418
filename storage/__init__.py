"""Persistence: SQLAlchemy models and repositories, and the Redis side (bus, key-value, cache)."""
