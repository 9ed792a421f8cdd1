"""A job's webhook delivered to a loopback receiver and verified with the Standard Webhooks
reference library, through ``mta_client.webhooks.verify``."""

from __future__ import annotations

import email.message
import json
import queue
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mta_client import Client, Webhook, webhooks
from mta_client.errors import WebhookVerificationError

Delivery = tuple[dict[str, str], bytes]


class Receiver:
    """A plain-http receiver on 127.0.0.1 that records every request and answers 204."""

    def __init__(self) -> None:
        self.deliveries: queue.Queue[Delivery] = queue.Queue()
        received = self.deliveries

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                received.put(({k: v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/mta"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def next(self, timeout: float = 30) -> Delivery:
        return self.deliveries.get(timeout=timeout)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_a_succeeded_job_is_announced_and_verifies(client: Client, receiver: Receiver, events_csv: Path) -> None:
    job = client.submit(client.upload(events_csv), models=["linear"], webhook=receiver.url)
    assert job.webhook_secret is not None and job.webhook_secret.startswith("whsec_")
    job.wait(timeout=120)
    headers, body = receiver.next()
    event = webhooks.verify(body, headers, job.webhook_secret)
    assert event.type == "job.succeeded"
    assert event.job_id == job.id
    assert event.webhook_id == f"msg_{job.id}"
    assert event.data["state"] == "succeeded"
    assert event.data["summary"]["rows"] == job.result().summary.rows
    assert event.data["result_url"] == f"/v1/jobs/{job.id}/result"
    # http.server's own header object works as it is.
    message = email.message.Message()
    for name, value in headers.items():
        message[name] = value
    assert webhooks.verify(body, message, job.webhook_secret).type == "job.succeeded"
    # Case of header names does not matter; a rotation's list of secrets is accepted.
    assert webhooks.verify(body, {k.upper(): v for k, v in headers.items()}, ["whsec_" + "A" * 32, job.webhook_secret])
    # The owner sees the delivery.
    deadline = time.monotonic() + 10
    while (deliveries := job.webhook_deliveries())["state"] != "delivered" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert deliveries["state"] == "delivered" and deliveries["webhook_id"] == event.webhook_id
    # A redelivery is the same event again, newly signed.
    job.redeliver_webhook()
    headers2, body2 = receiver.next()
    assert body2 == body and headers2["webhook-id"] == headers["webhook-id"]
    assert webhooks.verify(body2, headers2, job.webhook_secret).job_id == job.id


def test_tampered_or_wrongly_signed_requests_are_refused(
    client: Client, receiver: Receiver, tmp_path: Path
) -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,timestamp,channel,conversion\nu1,never,email,1\n")
    job = client.submit(client.upload(bad), webhook=Webhook(receiver.url, secret))
    assert job.webhook_secret is None
    headers, body = receiver.next()
    event = webhooks.verify(body, headers, secret)
    assert event.type == "job.failed"
    assert event.data["error"]["code"] == "invalid_value"
    tampered = body.replace(b"job.failed", b"job.succeeded")
    with pytest.raises(WebhookVerificationError):
        webhooks.verify(tampered, headers, secret)
    with pytest.raises(WebhookVerificationError):
        webhooks.verify(body, headers, "whsec_" + "B" * 32)
    with pytest.raises(WebhookVerificationError):
        webhooks.verify(body, {**headers, "webhook-timestamp": str(int(time.time()) - 3600)}, secret)
    without = {k: v for k, v in headers.items() if k.lower() != "webhook-signature"}
    with pytest.raises(WebhookVerificationError):
        webhooks.verify(body, without, secret)
    assert json.loads(body)["data"]["job_id"] == job.id
