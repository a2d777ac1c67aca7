"""Fixtures and helpers shared by the host tests."""
