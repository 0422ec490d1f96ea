"""A throwaway PostgreSQL cluster for the tests and the benchmarks.

Test support, not runtime code: it needs PostgreSQL's server binaries
(initdb, pg_ctl) and nothing in the `pausable` wheel uses it. The tests
import it as `support.servers` (tests/ is on their path); the benchmarks put
tests/ on sys.path to do the same.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Self

import asyncpg

from pausable.cli.launch import free_port


class PostgresServer:
    """A throwaway PostgreSQL cluster (initdb + pg_ctl) on a free loopback port.

    initdb refuses to run as root, so as root the cluster belongs to the
    `postgres` system user (the Debian package creates it). Tests run it
    without fsync and synchronous_commit; `durable=True` keeps both on, as in
    production (the benchmarks' Postgres figures).
    """

    def __init__(self, port: int | None = None, user: str = "pausable", *, durable: bool = False) -> None:
        self.port = port or free_port()
        self.user = user
        self.durable = durable
        self.data_dir: Path | None = None

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgresql+asyncpg://{self.user}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        command = list(args)
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self) -> PostgresServer:
        if shutil.which("initdb") is None:
            raise RuntimeError("initdb is not on PATH: install PostgreSQL's server binaries (apt-get install postgresql)")
        self.data_dir = Path(tempfile.mkdtemp(prefix="pausable-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.data_dir, "postgres", "postgres")
        cluster = str(self.data_dir / "data")
        self._run("initdb", "-D", cluster, "-U", self.user, "--auth=trust", "-E", "UTF8", "--no-sync")
        return self.restart()

    def restart(self) -> PostgresServer:
        """Start the server on the cluster that `start()` made (again after `halt()`), on the same port."""
        assert self.data_dir is not None, "start() first"
        options = f"-p {self.port} -k {self.data_dir} -c listen_addresses=127.0.0.1 -c max_connections=300"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off"
        self._run(
            "pg_ctl", "-D", str(self.data_dir / "data"), "-o", options, "-l", str(self.data_dir / "postgres.log"), "-w", "start"
        )
        return self

    def halt(self) -> None:
        """Stop the server but keep the cluster, as in an outage; `restart()` brings it back."""
        assert self.data_dir is not None, "start() first"
        self._run("pg_ctl", "-D", str(self.data_dir / "data"), "-m", "fast", "-w", "stop")

    def create_database(self, name: str) -> str:
        """Create database `name` and return its URL."""

        async def create() -> None:
            conn = await asyncpg.connect(host="127.0.0.1", port=self.port, user=self.user, database="postgres")
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            finally:
                await conn.close()

        asyncio.run(create())
        return self.url_for(name)

    def stop(self) -> None:
        if self.data_dir is None:
            return
        try:
            self._run("pg_ctl", "-D", str(self.data_dir / "data"), "-m", "immediate", "-w", "stop")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.data_dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
