"""Alembic environment shipped as package data, applied on start."""
