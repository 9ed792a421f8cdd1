"""What the sync and the async client share: configuration, the retry policy, progress bars."""

from __future__ import annotations

import logging
import os
import random
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from tqdm.auto import tqdm

from ._version import __version__
from .errors import ApiError, ConfigurationError, NetworkError, RequestTimeoutError
from .models import JobRecord

logger = logging.getLogger("mta_client")

DEFAULT_URL = "http://127.0.0.1:8080"
#: Read, write and pool timeouts of one request; connecting gets its own shorter limit.
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
#: Bytes per chunk when streaming an upload or a download.
CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before trying a request again.

    Retried: ``429`` (after ``Retry-After`` when the service sends one, unless it is longer
    than ``max_retry_after``: then the :class:`~mta_client.errors.RateLimitedError` is raised
    at once), the 5xx statuses in ``statuses``, ``409 request_in_progress`` (a submission with
    the same idempotency key still being recorded), connections that could not be made, and
    for idempotent requests connections that broke. The wait doubles from ``backoff`` up to
    ``max_backoff`` seconds, with jitter.
    """

    max_retries: int = 5
    backoff: float = 0.5
    max_backoff: float = 30.0
    max_retry_after: float = 300.0
    statuses: frozenset[int] = field(default_factory=lambda: frozenset({429, 500, 502, 503, 504}))

    def backoff_delay(self, attempt: int) -> float:
        ceiling = min(self.max_backoff, self.backoff * (2.0**attempt))
        return ceiling * random.uniform(0.5, 1.0)

    def delay(self, attempt: int, error: BaseException, *, idempotent: bool) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or ``None`` to give up."""
        if attempt >= self.max_retries:
            return None
        if isinstance(error, ApiError):
            if error.status not in self.statuses and error.code != "request_in_progress":
                return None
            retry_after = getattr(error, "retry_after", None)
            if retry_after is None and "retry-after" in error.headers:
                from .errors import parse_retry_after

                retry_after = parse_retry_after(error.headers["retry-after"])
            if retry_after is not None:
                return retry_after if retry_after <= self.max_retry_after else None
            return self.backoff_delay(attempt)
        if isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
            return self.backoff_delay(attempt)
        if isinstance(error, httpx.TransportError) and idempotent:
            return self.backoff_delay(attempt)
        return None


NO_RETRIES = RetryPolicy(max_retries=0)


def resolve_url(url: str | None) -> str:
    url = url or os.environ.get("MTA_URL") or DEFAULT_URL
    if not url.startswith(("http://", "https://")):
        raise ConfigurationError(f"the service URL must start with http:// or https://, not `{url}`")
    return url.rstrip("/")


def resolve_key(api_key: str | None) -> str:
    key = api_key or os.environ.get("MTA_API_KEY")
    if not key:
        raise ConfigurationError("no API key: pass api_key=… or set MTA_API_KEY")
    return key.strip()


def default_headers(api_key: str, extra: Mapping[str, str] | None) -> dict[str, str]:
    headers = {
        "authorization": f"Bearer {api_key}",
        "user-agent": f"mta-client-python/{__version__} httpx/{httpx.__version__}",
        "accept": "application/json",
    }
    headers.update(extra or {})
    return headers


def show_progress(progress: bool | None) -> bool:
    """``None`` means: when standard error is a terminal."""
    if progress is not None:
        return progress
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def network_error(error: httpx.TransportError, method: str, url: str) -> NetworkError:
    if isinstance(error, httpx.TimeoutException):
        return RequestTimeoutError(f"{method} {url} timed out ({type(error).__name__})")
    return NetworkError(f"{method} {url} failed: {error or type(error).__name__}")


def log_retry(method: str, path: str, attempt: int, delay: float, error: BaseException) -> None:
    what = f"{error.status} {error.code}" if isinstance(error, ApiError) else type(error).__name__
    logger.info("%s %s answered %s; retry %d in %.2f s", method, path, what, attempt + 1, delay)


def poll_delays(maximum: float) -> Iterator[float]:
    """Quick polls first (most jobs on small inputs end within a second), then every ``maximum``."""
    delay = min(0.1, maximum)
    while True:
        yield delay
        delay = min(maximum, delay * 1.5)


class UploadBar:
    """Bytes sent, as a tqdm bar (nothing at all when disabled)."""

    def __init__(self, enabled: bool, total: int | None, name: str) -> None:
        self._bar: tqdm[Any] | None = (
            tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=f"upload {name}", leave=False)
            if enabled
            else None
        )

    def update(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def restart(self) -> None:
        if self._bar is not None:
            self._bar.reset()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class JobBar:
    """A job's progress as a tqdm bar over its chunks, the state and stage as its label."""

    def __init__(self, enabled: bool, job_id: str) -> None:
        self._bar: tqdm[Any] | None = (
            tqdm(total=None, unit="chunk", desc=f"job {job_id[:8]}", leave=False) if enabled else None
        )

    def show(self, record: JobRecord) -> None:
        if self._bar is None:
            return
        p = record.progress
        if p.chunks_total and self._bar.total != p.chunks_total:
            self._bar.total = p.chunks_total
        self._bar.n = p.chunks_done if p.chunks_total or not record.ended else 0
        self._bar.set_postfix_str(record.describe(), refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
