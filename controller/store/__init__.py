"""Persistence: SQLModel tables, sessions, Alembic migrations. SQLite by default, Postgres in production."""
