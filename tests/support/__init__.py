"""Shared test helpers: real git repositories, databases, servers."""
