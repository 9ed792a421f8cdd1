"""The service's error bodies as typed exceptions: refused requests, failed jobs, rate limits."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import httpx
import pytest

from mta_client import Client, JobFailedError, RateLimitedError, RetryPolicy
from mta_client.errors import (
    ApiError,
    AuthenticationError,
    ConfigurationError,
    InvalidInputError,
    NetworkError,
    NotFoundError,
    PermissionDeniedError,
    Problem,
)

from conftest import Service, free_port

BAD_CSV = (
    "user_id,timestamp,channel,conversion,conversion_value\n"
    "u1,2026-01-01T00:00:00Z,search,0,\n"
    "u1,yesterday,email,0,\n"
    "u1,2026-01-02T00:00:00Z,,1,10\n"
    "u2,2026-01-02T00:00:00Z,display,0,\n"
    "u2,2026-01-03T00:00:00Z,direct,1,NaN\n"
)


def test_a_job_over_bad_input_fails_naming_rows_and_columns(client: Client, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(BAD_CSV)
    job = client.submit(client.upload(bad))
    with pytest.raises(JobFailedError) as failed:
        job.wait(timeout=60)
    error = failed.value
    assert error.job_id == job.id
    assert error.code == "invalid_value"
    assert error.request_id and error.request_id == job.record.request_id
    located = {(p.row, p.column) for p in error.details}
    assert (2, "timestamp") in located
    assert (5, "conversion_value") in located
    timestamp = next(p for p in error.details if p.column == "timestamp")
    assert "yesterday" in timestamp.problem
    assert "row 2, column `timestamp`" in str(error)
    # The record says the same without raising; the result refuses with the job's error.
    assert job.wait(check=False).record.error is not None
    with pytest.raises(JobFailedError):
        job.result()
    # client.attribute raises the same.
    with pytest.raises(JobFailedError) as again:
        client.attribute(bad, models=["linear"])
    assert again.value.code == "invalid_value"


def test_invalid_options_are_refused_at_submission(client: Client, events_csv: Path) -> None:
    upload = client.upload(events_csv)
    with pytest.raises(InvalidInputError) as refused:
        client.submit(upload, markov_order=9)
    error = refused.value
    assert (error.status, error.code) == (422, "invalid_option")
    assert error.details and error.details[0].column is not None and "markov_order" in error.details[0].column
    assert error.request_id
    with pytest.raises(InvalidInputError) as unknown:
        client.submit(upload, models=["linear", "lienar"])  # type: ignore[list-item]
    assert "lienar" in unknown.value.message
    with pytest.raises(InvalidInputError) as missing:
        client.submit("00000000-0000-4000-8000-000000000000")
    assert missing.value.details[0].column == "upload_id"


def test_http_errors_carry_code_status_message_and_request_id(service: Service, client: Client) -> None:
    with pytest.raises(NotFoundError) as missing:
        client.job("00000000-0000-4000-8000-000000000000")
    assert (missing.value.status, missing.value.code) == (404, "not_found")
    assert missing.value.request_id and missing.value.message
    with service.client("mta_not_a_real_key") as stranger:
        with pytest.raises(AuthenticationError) as unauthorized:
            list(stranger.jobs())
    assert unauthorized.value.code == "unauthorized"
    reader = service.make_key(tenant="readers", role="read")
    with service.client(reader) as read_only, pytest.raises(PermissionDeniedError) as forbidden:
        read_only.upload(Path(__file__))
    assert forbidden.value.code == "forbidden"
    assert isinstance(forbidden.value, ApiError)


def test_a_429_is_retried_after_retry_after(service: Service, tenant: str, caplog: pytest.LogCaptureFixture) -> None:
    # GCRA allows a burst of the whole hourly quota, then one request per 3600/N s: with N =
    # 900 that is one every 4 s, so the client's retry waits about 4 s.
    key = service.make_key(tenant=tenant, role="read", requests_per_hour=900)
    with service.client(key, retry=RetryPolicy(max_retries=0)) as impatient:
        for _ in range(1000):
            try:
                list(impatient.jobs(limit=1))
            except RateLimitedError as e:
                error = e
                break
        else:
            pytest.fail("no 429 after 1000 requests")
    assert (error.status, error.code) == (429, "rate_limited")
    assert error.retry_after is not None and 1 <= error.retry_after <= 5
    assert error.headers["retry-after"] == f"{error.retry_after:g}"
    assert error.request_id and "retry" in error.message
    with caplog.at_level(logging.INFO, logger="mta_client"), service.client(key) as patient:
        started = time.monotonic()
        assert list(patient.jobs()) == []
        waited = time.monotonic() - started
    retries = [r for r in caplog.records if "429 rate_limited" in r.getMessage()]
    assert retries, "the client did not retry"
    assert waited >= 0.9


def test_a_retry_after_beyond_the_policy_raises_at_once(service: Service, tenant: str) -> None:
    key = service.make_key(tenant=tenant, role="read", requests_per_hour=1)
    with service.client(key) as client:
        assert list(client.jobs()) == []
        started = time.monotonic()
        with pytest.raises(RateLimitedError) as limited:
            list(client.jobs())
    assert time.monotonic() - started < 5
    assert limited.value.retry_after is not None and limited.value.retry_after > 1000


def test_retries_on_5xx_with_backoff_then_success() -> None:
    answers = iter(
        [
            httpx.Response(503, json={"error": {"code": "unavailable", "message": "redis", "request_id": "r1"}}),
            httpx.Response(502, text="bad gateway"),
            httpx.Response(200, json={"jobs": []}),
        ]
    )
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return next(answers)

    http = httpx.Client(transport=httpx.MockTransport(handler))
    client = Client("http://127.0.0.1:9", "k", http_client=http, retry=RetryPolicy(backoff=0.01), progress=False)
    assert list(client.jobs()) == []
    assert seen == ["/v1/jobs"] * 3


def test_errors_without_a_json_body_still_get_a_type() -> None:
    http = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(500, text="<html>oops</html>")))
    client = Client("http://127.0.0.1:9", "k", http_client=http, retry=RetryPolicy(max_retries=1, backoff=0.01))
    with pytest.raises(ApiError) as failed:
        client.health()
    assert (failed.value.status, failed.value.code) == (500, "http_500")
    assert "oops" in failed.value.message


def test_an_unreachable_service_is_a_network_error() -> None:
    client = Client(f"http://127.0.0.1:{free_port()}", "k", retry=RetryPolicy(max_retries=1, backoff=0.01))
    with pytest.raises(NetworkError):
        client.health()


def test_configuration_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MTA_API_KEY", raising=False)
    with pytest.raises(ConfigurationError):
        Client()
    monkeypatch.setenv("MTA_URL", "http://127.0.0.1:1234/")
    monkeypatch.setenv("MTA_API_KEY", "k")
    with Client() as client:
        assert client.url == "http://127.0.0.1:1234"


def test_problem_reads_as_a_location() -> None:
    assert str(Problem("bad", row=3, column="x")) == "row 3, column `x`: bad"
    assert str(Problem("bad")) == "bad"
