"""Fixtures shared by the whole suite: databases (SQLite and real Postgres), settings, data directories."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from odin.controller.store.db import create_db_engine, migrate
from tests.support.postgres import postgres_server, scratch_database

pytest_plugins = ["tests.support.git_fixtures"]


@pytest.fixture(scope="session")
def postgres_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with postgres_server(tmp_path_factory.mktemp("postgres")) as url:
        yield url


@pytest.fixture(scope="session")
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """One migrated scratch database for the session; tests get it emptied (see `db`)."""
    with scratch_database(postgres_admin_url) as url:
        engine = create_db_engine(url)
        migrate(engine)
        engine.dispose()
        yield url


def _truncate_all(engine: Engine) -> None:
    tables = [cast(sa.Table, t).name for t in SQLModel.metadata.sorted_tables]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in reversed(tables):
                conn.execute(sa.text(f"DELETE FROM {name}"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database: SQLite in tmp_path, or the session's Postgres database (emptied)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'odin.db'}"
        return
    url = cast(str, request.getfixturevalue("postgres_url"))
    engine = create_db_engine(url)
    _truncate_all(engine)
    engine.dispose()
    yield url


@pytest.fixture
def db(db_url: str) -> Iterator[Engine]:
    engine = create_db_engine(db_url)
    migrate(engine)
    yield engine
    engine.dispose()
