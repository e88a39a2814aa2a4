"""Store versions: a counter per kind of change, so that a replica can tell whether something changed by reading
one row instead of every row that might have (`store_versions`).

`REGISTRATIONS` moves on with every write that changes what the controller follows of a registered repository
(`repo_records.insert_record`, `update_record` when a followed field changes, `remove_record`, and
`repositories.follow_repository` when it rewrites a registered row): `bump` is called inside the write's own
transaction, so a reader that sees the new row sees the new number, and a reader that saw the old number re-reads at
its next look. Writes the controller's refresh ignores (sync's `last_seen_sha`, conditions, the tags seen, retention)
leave it alone. The counter says "something changed", never what: `Controller.refresh_if_changed` then reads every
registration as before.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from odin.controller.store.db import DbEngine, reading
from odin.controller.store.tables import STORE_VERSIONS
from odin.controller.store.upsert import insert_on_conflict

REGISTRATIONS = "registrations"
"""The repositories registered through the API, as the controller follows them."""


def bump(conn: Connection, name: str) -> None:
    """Add one to the counter `name`, inside the caller's transaction. Its row is created (at 0) by the first bump, a
    migration writing no rows: the INSERT does nothing when it is there, and two first bumps at once do not collide
    (Postgres waits for the other's row; SQLite has one writer)."""
    row = insert_on_conflict(STORE_VERSIONS, conn.dialect.name, conflict=["name"], values={"name": name, "version": 0})
    conn.execute(row)
    conn.execute(
        STORE_VERSIONS.update().where(STORE_VERSIONS.c.name == name).values(version=STORE_VERSIONS.c.version + 1)
    )


def current(engine: DbEngine, name: str) -> int:
    """The counter `name` now: 0 before its first bump. One primary-key read."""
    with reading(engine) as conn:
        version = conn.execute(sa.select(STORE_VERSIONS.c.version).where(STORE_VERSIONS.c.name == name)).scalar()
    return 0 if version is None else int(version)
