"""Fixtures for the API-argument tests: the session broker and ``connect`` come from
tests/conftest.py."""
