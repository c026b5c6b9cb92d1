"""Observers: reading each source asset's current data version."""
