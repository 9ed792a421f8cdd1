"""The suite runs against a real all-in-one service: ``mta serve`` from this repository's build
(``MTA_BIN``, default ``target/debug/mta``) on a free loopback port, with its own data
directory (private redis-server, local object store), started once per session.

Webhooks to plain-http loopback receivers are allowed for the run (``MTA_WEBHOOK_ALLOW``,
``MTA_WEBHOOK_ALLOW_HTTP``), as the operator of a test deployment would.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from mta_client import Client

REPO = Path(__file__).resolve().parents[3]
SAMPLES = REPO / "samples"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Service:
    url: str
    bin: Path
    data_dir: Path
    admin_key: str
    log: Path

    def make_key(self, *, tenant: str, role: str = "submit", requests_per_hour: int | None = None) -> str:
        """A new API key, made as an operator does (``mta keys create`` against the service's Redis)."""
        args = [str(self.bin), "keys", "create", "--tenant", tenant, "--role", role, "--name", f"pytest {role}"]
        if requests_per_hour is not None:
            args += ["--requests-per-hour", str(requests_per_hour)]
        done = subprocess.run(
            args, env={**os.environ, "MTA_DATA_DIR": str(self.data_dir)}, capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    def client(self, key: str, **kwargs: Any) -> Client:
        return Client(url=self.url, api_key=key, progress=False, **kwargs)

    def attribute_locally(self, path: Path, *args: str) -> dict[str, Any]:
        """``mta attribute FILE`` (the local engine, no service): the result JSON without ``job_id``."""
        done = subprocess.run([str(self.bin), "attribute", str(path), *args], capture_output=True, check=True)
        result: dict[str, Any] = json.loads(done.stdout)
        return result


@pytest.fixture(scope="session")
def service() -> Iterator[Service]:
    binary = Path(os.environ.get("MTA_BIN", REPO / "target" / "debug" / "mta"))
    if not binary.is_absolute():
        binary = REPO / binary
    if not binary.exists():
        pytest.exit(f"{binary} does not exist: build it with `cargo build --bin mta` or set MTA_BIN", returncode=2)
    data_dir = Path(tempfile.mkdtemp(prefix="mta-pytest-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "MTA_STORE", "MTA_API_KEY", "MTA_URL")}
    env.update(
        MTA_DATA_DIR=str(data_dir),
        MTA_BIND=f"127.0.0.1:{port}",
        RUST_LOG="warn",
        MTA_WEBHOOK_ALLOW="127.0.0.1/32",
        MTA_WEBHOOK_ALLOW_HTTP="true",
        MTA_WEBHOOK_RETRY_SECS="1,2,2",
    )
    log = data_dir / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen([str(binary), "serve", "--workers", "1"], env=env, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    key_file = data_dir / "admin.key"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.exit(f"mta serve exited with {process.returncode}:\n{log.read_text()[-3000:]}", returncode=2)
            try:
                if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200 and key_file.exists():
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.exit(f"mta serve did not start:\n{log.read_text()[-3000:]}", returncode=2)
            time.sleep(0.1)
        yield Service(url=url, bin=binary, data_dir=data_dir, admin_key=key_file.read_text().strip(), log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def tenant() -> str:
    """A tenant of its own for each test: its job list and result cache start empty."""
    return f"py{uuid.uuid4().hex[:12]}"


@pytest.fixture
def key(service: Service, tenant: str) -> str:
    return service.make_key(tenant=tenant, role="submit", requests_per_hour=100_000)


@pytest.fixture
def client(service: Service, key: str) -> Iterator[Client]:
    with service.client(key) as c:
        yield c


@pytest.fixture
def events_csv() -> Path:
    return SAMPLES / "events.csv"


@pytest.fixture
def paths_csv() -> Path:
    return SAMPLES / "paths.csv"


def close_to(a: Any, b: Any, *, rel: float = 1e-9, path: str = "$") -> list[str]:
    """Where two JSON values differ (numbers within ``rel``); empty when they match."""
    if isinstance(a, bool) or isinstance(b, bool):
        return [] if a is b else [f"{path}: {a!r} != {b!r}"]
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        ok = a == b or abs(a - b) <= rel * max(abs(a), abs(b), 1e-12)
        return [] if ok else [f"{path}: {a!r} != {b!r}"]
    if isinstance(a, dict) and isinstance(b, dict):
        if list(a) != list(b):
            return [f"{path}: keys {list(a)} != {list(b)}"]
        return [d for k in a for d in close_to(a[k], b[k], rel=rel, path=f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in close_to(x, y, rel=rel, path=f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]
