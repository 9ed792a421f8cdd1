"""Verifying the service's webhook requests (docs/webhooks.md) with the Standard Webhooks
reference library (``standardwebhooks``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import standardwebhooks

from .errors import WebhookVerificationError

__all__ = ["WebhookEvent", "Headers", "verify"]


class Headers(Protocol):
    """Anything with ``items()``: a dict, ``http.server``'s message, Starlette's or Flask's headers."""

    def items(self) -> Iterable[tuple[str, Any]]: ...


@dataclass(frozen=True)
class WebhookEvent:
    """A verified event: ``type`` is ``job.succeeded``, ``job.failed`` or ``job.cancelled``;
    ``data`` holds ``job_id``, ``state``, ``tenant`` and, per type, ``summary`` and
    ``result_url`` or ``error``. ``webhook_id`` is the same on every retry: use it to drop
    duplicates (delivery is at least once)."""

    type: str
    timestamp: str
    data: dict[str, Any]
    webhook_id: str
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def job_id(self) -> str:
        return str(self.data["job_id"])


def verify(
    body: bytes | str,
    headers: Headers,
    secret: str | list[str] | tuple[str, ...],
) -> WebhookEvent:
    """Checks a webhook request and returns its event.

    ``body`` must be the raw request body, before any JSON parsing; ``headers`` any mapping of
    the request's headers (names in any case); ``secret`` the ``whsec_…`` secret, or several
    (during a secret rotation) of which one must match. Requests signed more than 5 minutes
    away from now are refused (replays). Raises :class:`WebhookVerificationError`.
    """
    secrets = [secret] if isinstance(secret, str) else list(secret)
    if not secrets:
        raise WebhookVerificationError("no secret to verify with")
    plain = {str(k).lower(): str(v) for k, v in headers.items()}
    failure: Exception | None = None
    for one in secrets:
        try:
            payload = standardwebhooks.Webhook(one).verify(body, plain)
        except Exception as e:  # the library raises several types (bad secret, bad signature)
            failure = e
            continue
        if not isinstance(payload, dict):
            raise WebhookVerificationError("the body is not a JSON object")
        return WebhookEvent(
            type=str(payload.get("type", "")),
            timestamp=str(payload.get("timestamp", "")),
            data=dict(payload.get("data") or {}),
            webhook_id=plain["webhook-id"],
            raw=payload,
        )
    raise WebhookVerificationError(str(failure) or "the signature does not verify") from failure
