"""Finding a real PostgreSQL for the tests, or starting a private one.

Order: `ODIN_TEST_POSTGRES_URL` if set; else a server on 127.0.0.1:5432 (user postgres, trust auth, as on the
development machines); else a throw-away server started with pytest-postgresql's executor from the installed server
binaries (`pg_ctl` under /usr/lib/postgresql/*/bin or on PATH). With `CI=true`, not finding or starting one is a
failure, never a skip: a CI run that silently skipped the Postgres half of the store tests would be a lie.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.support.ports import free_port

DEFAULT_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _reachable(url: str) -> bool:
    engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True
    except Exception:
        return False
    finally:
        engine.dispose()


def _pg_ctl() -> str | None:
    found = shutil.which("pg_ctl")
    if found:
        return found
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    return candidates[0] if candidates else None


@contextmanager
def postgres_server(tmp_dir: Path) -> Iterator[str]:
    """Yield an admin URL (database `postgres`) of a running server, starting a private one if needed."""
    configured = os.environ.get("ODIN_TEST_POSTGRES_URL")
    if configured:
        if not _reachable(configured):
            pytest.fail(f"ODIN_TEST_POSTGRES_URL is set but the server does not answer: {configured}")
        yield configured
        return
    if _reachable(DEFAULT_URL):
        yield DEFAULT_URL
        return
    pg_ctl = _pg_ctl()
    if pg_ctl is None:
        message = "no PostgreSQL is running on 127.0.0.1:5432 and no server binaries (pg_ctl) are installed"
        if in_ci():
            pytest.fail(message + " (CI=true: Postgres tests must run)")
        pytest.skip(message)
    if os.geteuid() == 0:
        with private_server_as_postgres_user(Path(pg_ctl).parent, tmp_dir) as url:
            yield url
        return
    from pytest_postgresql.executor import PostgreSQLExecutor

    port = free_port()
    datadir = tmp_dir / "pgdata"
    executor = PostgreSQLExecutor(
        executable=pg_ctl,
        host="127.0.0.1",
        port=port,
        datadir=str(datadir),
        unixsocketdir=str(tmp_dir),
        logfile=str(tmp_dir / "postgres.log"),
        startparams="-w",
        dbname="postgres",
        user="postgres",
        password="",
    )
    try:
        executor.start()
    except Exception as e:
        if in_ci():
            pytest.fail(f"could not start a private PostgreSQL from {pg_ctl}: {e}")
        pytest.skip(f"could not start a private PostgreSQL from {pg_ctl}: {e}")
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        executor.stop()


@contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    """A new, empty database on the server, dropped afterwards."""
    name = f"odin_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        yield sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def private_server_as_postgres_user(bin_dir: Path, tmp_dir: Path) -> Iterator[str]:
    """PostgreSQL refuses to run as root; as root, run initdb and pg_ctl as the `postgres` system user."""
    import pwd
    import subprocess

    try:
        pg_user = pwd.getpwnam("postgres")
    except KeyError:
        message = "running as root and there is no `postgres` system user to start a private PostgreSQL as"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    base = Path(tempfile.mkdtemp(prefix="odin-pg-"))
    os.chown(base, pg_user.pw_uid, pg_user.pw_gid)
    datadir, port = base / "data", free_port()
    as_pg = ["runuser", "-u", "postgres", "--"]
    try:
        subprocess.run(
            [*as_pg, str(bin_dir / "initdb"), "-D", str(datadir), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
            check=True,
            capture_output=True,
        )
        options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        subprocess.run(
            [
                *as_pg,
                str(bin_dir / "pg_ctl"),
                "-D",
                str(datadir),
                "-o",
                options,
                "-l",
                str(base / "log"),
                "-w",
                "start",
            ],
            check=True,
            capture_output=True,
        )
    except (subprocess.CalledProcessError, FileNotFoundError) as e:
        detail = getattr(e, "stderr", b"") or b""
        message = f"could not start a private PostgreSQL: {e} {detail.decode(errors='replace')[-500:]}"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_pg, str(bin_dir / "pg_ctl"), "-D", str(datadir), "-m", "immediate", "stop"],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)


class PrivatePostgres:
    """A PostgreSQL server of the test's own (initdb + pg_ctl), which the test may stop and start again.

    Only a private server may be stopped: the machine's shared one serves every other test. As root, the server
    runs as the `postgres` system user (PostgreSQL refuses root). The port stays the same across restarts, so
    clients reconnect to the same URL, as they would to a database that came back after an outage.
    """

    def __init__(self) -> None:
        pg_ctl = _pg_ctl()
        if pg_ctl is None:
            message = "no PostgreSQL server binaries (pg_ctl) are installed to start a private server"
            if in_ci():
                pytest.fail(message)
            pytest.skip(message)
        self.bin_dir = Path(pg_ctl).parent
        self.base = Path(tempfile.mkdtemp(prefix="odin-pg-"))
        self.datadir = self.base / "data"
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            import pwd

            try:
                pg_user = pwd.getpwnam("postgres")
            except KeyError:
                message = "running as root and there is no `postgres` system user to start a private PostgreSQL as"
                if in_ci():
                    pytest.fail(message)
                pytest.skip(message)
            os.chown(self.base, pg_user.pw_uid, pg_user.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.admin_url = f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        import subprocess

        try:
            subprocess.run([*self.as_user, *args], check=True, capture_output=True, timeout=60)
        except (subprocess.CalledProcessError, FileNotFoundError) as e:
            detail = (getattr(e, "stderr", b"") or b"").decode(errors="replace")[-500:]
            message = f"private PostgreSQL: {' '.join(args[:1])} failed: {e} {detail}"
            if in_ci():
                pytest.fail(message)
            pytest.skip(message)

    def init(self) -> PrivatePostgres:
        self._run(str(self.bin_dir / "initdb"), "-D", str(self.datadir), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        return self.start()

    def start(self) -> PrivatePostgres:
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        pg_ctl = str(self.bin_dir / "pg_ctl")
        self._run(pg_ctl, "-D", str(self.datadir), "-o", options, "-l", str(self.base / "log"), "-w", "start")
        return self

    def create_database(self, name: str) -> str:
        """A new database on this server (removed with the server): its URL."""
        admin = sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        finally:
            admin.dispose()
        return sa.make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def stop(self, mode: str = "fast") -> None:
        """`fast`: connections are closed, as when the server is shut down or its node is drained."""
        import subprocess

        subprocess.run(
            [*self.as_user, str(self.bin_dir / "pg_ctl"), "-D", str(self.datadir), "-m", mode, "-w", "stop"],
            check=False,
            capture_output=True,
            timeout=60,
        )

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres().init()
    try:
        yield server
    finally:
        server.remove()
