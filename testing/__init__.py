"""Test support that ships with Odin, for Odin's own tests and for plugin authors (nothing here runs in production)."""
