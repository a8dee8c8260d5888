"""Start throwaway PostgreSQL, Redis and SeaweedFS (S3) servers on free loopback ports.

Used by the test suite (each run gets its own, under a temporary directory, so tests
never touch the demo's data and two runs never collide) and by benchmarks.
PostgreSQL refuses to run as root, so as root the cluster runs as the ``postgres`` user.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_block(n: int) -> int:
    """A base port with n free ports after it (SeaweedFS wants several)."""
    for _ in range(50):
        base = free_port()
        if base + n > 65000:
            continue
        ok = True
        for p in range(base, base + n):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free block of ports")


def wait_for_port(port: int, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listening on {port} after {timeout}s")


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@dataclass
class Postgres:
    base: Path
    port: int = field(default_factory=free_port)

    @property
    def data(self) -> Path:
        return self.base / "pgdata"

    def start(self) -> Postgres:
        self.base.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.base, pw.pw_uid, pw.pw_gid)
        subprocess.run(
            _as_postgres(
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--no-sync",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ]
            ),
            check=True,
            capture_output=True,
        )
        opts = (
            f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300 "
            "-c shared_buffers=256MB"
        )
        subprocess.run(
            _as_postgres(
                [
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-o",
                    opts,
                    "-l",
                    str(self.base / "postgres.log"),
                    "-w",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )
        return self

    def stop(self) -> None:
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"]), capture_output=True
        )

    def superuser_url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def create_roles(self, dbname: str = "fieldday") -> None:
        env = {**os.environ, "FIELDDAY_DB": dbname, "OWNER_PASSWORD": "owner-pw", "APP_PASSWORD": "app-pw"}
        subprocess.run(
            ["bash", str(ROOT / "scripts" / "db_roles.sh"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"],
            check=True,
            env=env,
            capture_output=True,
        )

    def url(self, role: str, dbname: str = "fieldday", password: str | None = None) -> str:
        password = password or {"fieldday_owner": "owner-pw", "fieldday_app": "app-pw"}[role]
        return f"postgresql+psycopg://{role}:{password}@127.0.0.1:{self.port}/{dbname}"


@dataclass
class RedisServer:
    base: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        self.base.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.base),
            ],
            stdout=open(self.base / "redis.log", "w"),  # noqa: SIM115 - the child process owns it
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, proc=self.proc)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@dataclass
class SeaweedS3:
    """SeaweedFS with the S3 gateway, started with credentials (DESIGN §1) and explicit ports."""

    base: Path
    access_key: str = "fieldday"
    secret_key: str = "fieldday-secret"
    port: int = 0
    proc: subprocess.Popen | None = None

    def start(self) -> SeaweedS3:
        self.base.mkdir(parents=True, exist_ok=True)
        ids = {
            "identities": [
                {
                    "name": "fieldday",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        (self.base / "identities.json").write_text(json.dumps(ids))
        b = free_port_block(10)
        self.port = b
        weed = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
        cmd = [
            weed,
            "server",
            f"-dir={self.base}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-s3",
            f"-s3.config={self.base / 'identities.json'}",
            f"-s3.port={b}",
            f"-s3.port.grpc={b + 1}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-master.port={b + 2}",
            f"-master.port.grpc={b + 3}",
            f"-volume.port={b + 4}",
            f"-volume.port.grpc={b + 5}",
            f"-filer.port={b + 6}",
            f"-filer.port.grpc={b + 7}",
            f"-metricsPort={b + 8}",
            "-master.telemetry=false",
            "-iam=false",
            # Room for both the filer's own collection and the bucket's: with 5 slots the default
            # collection could take them all first, and every upload then failed ("no writable
            # volumes", an S3 InternalError). Volumes are sparse files; 256 MB keeps them small.
            "-volume.max=50",
            "-master.volumeSizeLimitMB=256",
        ]
        self.proc = subprocess.Popen(cmd, stdout=open(self.base / "weed.log", "w"), stderr=subprocess.STDOUT)  # noqa: SIM115
        wait_for_port(b, timeout=60, proc=self.proc)
        return self

    def wait_ready(self, bucket: str, timeout: float = 60) -> None:
        """Create ``bucket``; the gateway answers before the filer is ready, so retry."""
        import boto3
        from botocore.config import Config

        s3 = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            try:
                s3.create_bucket(Bucket=bucket)
                return
            except s3.exceptions.BucketAlreadyOwnedByYou:
                return
            except Exception as exc:  # noqa: BLE001 - starting up
                last = exc
                time.sleep(0.5)
        raise TimeoutError(f"S3 not ready: {last}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"
