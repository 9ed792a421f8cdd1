"""Typed exceptions.

Every error the service answers (`{"error": {"code", "message", "details"?, "request_id"?}}`,
docs/service.md, "Errors") becomes an :class:`ApiError` subclass chosen by its ``code``; a job
that failed raises :class:`JobFailedError` with the job's stored error, in the same shape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = [
    "MtaError",
    "ConfigurationError",
    "NetworkError",
    "RequestTimeoutError",
    "Problem",
    "ServiceError",
    "ApiError",
    "BadRequestError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "ConflictError",
    "PayloadTooLargeError",
    "UnsupportedMediaTypeError",
    "InvalidInputError",
    "RateLimitedError",
    "ServerError",
    "UnavailableError",
    "JobFailedError",
    "JobCancelledError",
    "WaitTimeoutError",
    "WebhookVerificationError",
]


class MtaError(Exception):
    """Base class of every error this package raises."""


class ConfigurationError(MtaError):
    """The client is missing something it needs (a URL, an API key, an optional package)."""


class NetworkError(MtaError):
    """The service could not be reached, or the connection broke (after the retries)."""


class RequestTimeoutError(NetworkError, TimeoutError):
    """A request took longer than the client's timeout (after the retries)."""


@dataclass(frozen=True)
class Problem:
    """One located problem: a data ``row`` (1-based, header not counted) and/or a ``column``
    (a file column, or a request field's path such as ``options.markov_order``)."""

    problem: str
    row: int | None = None
    column: str | None = None

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Problem:
        row = value.get("row")
        column = value.get("column")
        return cls(
            problem=str(value.get("problem", "")),
            row=int(row) if row is not None else None,
            column=str(column) if column is not None else None,
        )

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column `{self.column}`")
        return f"{', '.join(where)}: {self.problem}" if where else self.problem


class ServiceError(MtaError):
    """An error the service reported: a refused request or a failed job."""

    def __init__(
        self,
        code: str,
        message: str,
        details: list[Problem] | None = None,
        request_id: str | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.details: list[Problem] = list(details or [])
        self.request_id = request_id
        super().__init__(self._text())

    def _text(self) -> str:
        lines = [f"{self.code}: {self.message}"]
        lines += [f"  {problem}" for problem in self.details[:10]]
        if len(self.details) > 10:
            lines.append(f"  … and {len(self.details) - 10} more")
        if self.request_id:
            lines.append(f"  (request id {self.request_id})")
        return "\n".join(lines)


class ApiError(ServiceError):
    """The service refused a request; ``status`` is the HTTP status."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[Problem] | None = None,
        request_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status = status
        self.headers: dict[str, str] = dict(headers or {})
        super().__init__(code, message, details, request_id)


class BadRequestError(ApiError):
    """400 ``invalid_request``: malformed JSON, query or body, or a bad header."""


class AuthenticationError(ApiError):
    """401 ``unauthorized``: no key, or an unknown, revoked or expired one."""


class PermissionDeniedError(ApiError):
    """403 ``forbidden``: the key's role may not do this."""


class NotFoundError(ApiError):
    """404 ``not_found`` or ``credits_not_requested``."""


class ConflictError(ApiError):
    """409: ``job_finished``, ``result_not_ready``, ``job_failed``, ``job_cancelled``, ``request_in_progress``, …"""


class PayloadTooLargeError(ApiError):
    """413 ``limit_exceeded``."""


class UnsupportedMediaTypeError(ApiError):
    """415 ``unsupported_media_type``."""


class InvalidInputError(ApiError):
    """422: an invalid request field (``invalid_option``, named in ``details``) or unreadable input."""


class RateLimitedError(ApiError):
    """429 ``rate_limited`` or ``upload_quota_exceeded``; ``retry_after`` in seconds when the
    service said (``Retry-After``)."""

    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(*args, **kwargs)


class ServerError(ApiError):
    """5xx: ``internal`` (a fault of the service; details only in its log)."""


class UnavailableError(ServerError):
    """503 ``unavailable``: Redis or the object store is unreachable right now."""


class JobFailedError(ServiceError):
    """The job failed; ``code``, ``message`` and ``details`` are the job's stored error (bad
    input names rows and columns), ``request_id`` the id of the request that created it."""

    def __init__(
        self,
        job_id: str,
        code: str,
        message: str,
        details: list[Problem] | None = None,
        request_id: str | None = None,
    ) -> None:
        self.job_id = job_id
        super().__init__(code, message, details, request_id)


class JobCancelledError(MtaError):
    """The job was cancelled before it produced a result."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id} was cancelled")


class WaitTimeoutError(MtaError, TimeoutError):
    """``Job.wait(timeout=…)`` ran out before the job ended (the job goes on)."""

    def __init__(self, job_id: str, timeout: float, state: str) -> None:
        self.job_id = job_id
        self.timeout = timeout
        self.state = state
        super().__init__(f"job {job_id} is still {state} after {timeout:g} s")


class WebhookVerificationError(MtaError):
    """A webhook request's signature, timestamp or headers do not verify."""


_BY_CODE: dict[str, type[ApiError]] = {
    "invalid_request": BadRequestError,
    "unauthorized": AuthenticationError,
    "forbidden": PermissionDeniedError,
    "not_found": NotFoundError,
    "credits_not_requested": NotFoundError,
    "request_in_progress": ConflictError,
    "job_finished": ConflictError,
    "job_not_ended": ConflictError,
    "result_not_ready": ConflictError,
    "job_failed": ConflictError,
    "job_cancelled": ConflictError,
    "key_revoked": ConflictError,
    "direct_upload_unsupported": ConflictError,
    "limit_exceeded": PayloadTooLargeError,
    "unsupported_media_type": UnsupportedMediaTypeError,
    "unknown_format": InvalidInputError,
    "empty_input": InvalidInputError,
    "truncated_input": InvalidInputError,
    "missing_columns": InvalidInputError,
    "invalid_value": InvalidInputError,
    "invalid_option": InvalidInputError,
    "rate_limited": RateLimitedError,
    "upload_quota_exceeded": RateLimitedError,
    "internal": ServerError,
    "unavailable": UnavailableError,
}

_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    415: UnsupportedMediaTypeError,
    422: InvalidInputError,
    429: RateLimitedError,
    503: UnavailableError,
}

#: The error codes this client knows (docs/service.md, "Errors"); a test compares them with
#: the live OpenAPI document.
KNOWN_CODES = frozenset(_BY_CODE)


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime
    from datetime import datetime, timezone

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def error_from_response(response: httpx.Response) -> ApiError:
    """The typed exception for an error response (the body must have been read)."""
    status = response.status_code
    headers = {k.lower(): v for k, v in response.headers.items()}
    code, message, details, request_id = f"http_{status}", response.reason_phrase or "error", [], None
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = str(error.get("code") or code)
        message = str(error.get("message") or message)
        details = [Problem.from_json(d) for d in error.get("details") or [] if isinstance(d, dict)]
        request_id = error.get("request_id")
    elif response.content:
        message = response.text[:500]
    request_id = request_id or headers.get("x-request-id")
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status) or (ServerError if status >= 500 else ApiError)
    args = (status, code, message, details, request_id, headers)
    if issubclass(cls, RateLimitedError):
        return cls(*args, retry_after=parse_retry_after(headers.get("retry-after")))
    return cls(*args)
