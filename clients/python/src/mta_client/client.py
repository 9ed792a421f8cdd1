"""The synchronous client: :class:`Client` and its :class:`Job` handles."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Literal

import httpx
from typing_extensions import Self, Unpack

from ._base import (
    CHUNK_BYTES,
    DEFAULT_TIMEOUT,
    JobBar,
    RetryPolicy,
    default_headers,
    log_retry,
    network_error,
    poll_delays,
    resolve_key,
    resolve_url,
    show_progress,
)
from ._optional import require
from .errors import JobCancelledError, WaitTimeoutError, error_from_response
from .models import JobRecord, Upload
from .results import AttributionResult
from .spec import (
    ChannelRulesLike,
    InputFormat,
    InputKind,
    JobOptions,
    Model,
    Period,
    PositionWeightsLike,
    Webhook,
    build_spec,
    idempotency_key_for,
)
from .uploads import ApiUploader, UploadData, Uploader, open_source

if TYPE_CHECKING:
    import pyarrow

__all__ = ["Client", "Job"]

_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


class Client:
    """A client of one mta service.

    ``url`` defaults to ``MTA_URL`` (else ``http://127.0.0.1:8080``), ``api_key`` to
    ``MTA_API_KEY``. ``timeout`` is per request (seconds or an :class:`httpx.Timeout`); failed
    requests are retried by ``retry`` (:class:`RetryPolicy`). ``progress`` shows upload and job
    progress bars (default: when standard error is a terminal). ``http_client`` lets you bring
    your own :class:`httpx.Client` (proxies, certificates, event hooks); it is not closed by
    :meth:`close`.

    Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout | None = None,
        retry: RetryPolicy | None = None,
        progress: bool | None = None,
        headers: Mapping[str, str] | None = None,
        http_client: httpx.Client | None = None,
        uploader: Uploader | None = None,
    ) -> None:
        self.url = resolve_url(url)
        self.retry = retry or RetryPolicy()
        self.progress = progress
        self.uploader: Uploader = uploader or ApiUploader()
        self._headers = default_headers(resolve_key(api_key), headers)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(
            timeout=DEFAULT_TIMEOUT if timeout is None else timeout, follow_redirects=False
        )
        self._timeout = timeout

    # -- plumbing -------------------------------------------------------------------------

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(url={self.url!r})"

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        body: Callable[[], Iterable[bytes]] | None = None,
        replayable: bool = True,
        idempotent: bool | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        """One API call with the client's key, retries and typed errors.

        ``body`` makes a fresh request body for each attempt (``replayable=False``: one
        attempt only). With ``stream=True`` the successful response is returned unread: close
        it. Raises an :class:`~mta_client.errors.ApiError` subclass for an error answer and
        :class:`~mta_client.errors.NetworkError` when the service cannot be reached.
        """
        method = method.upper()
        url = f"{self.url}{path}"
        if idempotent is None:
            idempotent = method in _IDEMPOTENT_METHODS
        attempt = 0
        while True:
            request_headers = {**self._headers, **(headers or {})}
            request = self._http.build_request(
                method,
                url,
                params=params,
                json=json,
                headers=request_headers,
                content=body() if body is not None else None,
                timeout=self._timeout if self._timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
            error: BaseException
            try:
                response = self._http.send(request, stream=True)
            except httpx.TransportError as e:
                error = e
            else:
                if response.status_code < 400:
                    if not stream:
                        try:
                            response.read()
                        finally:
                            response.close()
                    return response
                try:
                    response.read()
                finally:
                    response.close()
                error = error_from_response(response)
            delay = None if (body is not None and not replayable) else self.retry.delay(
                attempt, error, idempotent=idempotent
            )
            if delay is None:
                if isinstance(error, httpx.TransportError):
                    raise network_error(error, method, path) from error
                raise error
            log_retry(method, path, attempt, delay, error)
            time.sleep(delay)
            attempt += 1

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    # -- the service ----------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """``GET /health``: version and queue depth (no key needed)."""
        result: dict[str, Any] = self._json("GET", "/health")
        return result

    def openapi(self) -> dict[str, Any]:
        """The service's OpenAPI document (``GET /openapi.json``)."""
        result: dict[str, Any] = self._json("GET", "/openapi.json")
        return result

    def upload(self, data: UploadData, *, progress: bool | None = None) -> Upload:
        """Uploads a file (path or binary file object, streamed with a progress bar), a pandas or
        polars DataFrame or an Arrow table (written as Parquet on the fly)."""
        source = open_source(data)
        try:
            return self.uploader.upload(self, source, progress=show_progress(self._progress(progress)))
        finally:
            if source is not data:
                source.close()

    def submit(
        self,
        upload: Upload | str,
        *,
        kind: InputKind | None = None,
        format: InputFormat | None = None,
        delimiter: str | None = None,
        path_separator: str | None = None,
        columns: Mapping[str, str] | None = None,
        models: Sequence[Model] | Literal["all"] | None = None,
        markov_order: int | Literal["auto"] | None = None,
        markov_pair_effects: bool | None = None,
        lookback_days: float | Sequence[float] | Mapping[str, float] | None = None,
        half_life_days: float | None = None,
        position_weights: PositionWeightsLike | None = None,
        direct_channels: Sequence[str] | None = None,
        conversion_row_is_touch: bool | None = None,
        max_journey_touches: int | None = None,
        channel_rules: ChannelRulesLike | None = None,
        period: Period | None = None,
        timezone: str | None = None,
        breakdown: Sequence[str] | str | None = None,
        segment_by: str | None = None,
        conversion_types: Sequence[str] | str | None = None,
        top_paths: int | None = None,
        max_report_paths: int | None = None,
        intervals: int | Mapping[str, float] | None = None,
        export_credits: bool | None = None,
        spend_upload_id: Upload | str | None = None,
        spend: UploadData | None = None,
        webhook: str | Webhook | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Submits a job over an upload (``POST /v1/jobs``); ``None`` leaves an option to the
        service's default (docs/user-guide.md, "Options").

        Every submission carries an ``Idempotency-Key`` (``idempotency_key``, else a fresh one),
        so the client's retries never create a second job. ``spend`` is a cost table (a path, file
        or DataFrame: ``date``, ``channel``, optional ``campaign``, ``cost``) uploaded first and named
        by ``spend_upload_id``; or give the id of one uploaded before.
        """
        upload_id = upload.upload_id if isinstance(upload, Upload) else upload
        if spend is not None:
            if spend_upload_id is not None:
                raise TypeError("give `spend` or `spend_upload_id`, not both")
            spend_upload_id = self.upload(spend)
        if isinstance(spend_upload_id, Upload):
            spend_upload_id = spend_upload_id.upload_id
        spec = build_spec(
            upload_id,
            dict(
                kind=kind, format=format, delimiter=delimiter, path_separator=path_separator, columns=columns,
                models=models, markov_order=markov_order, markov_pair_effects=markov_pair_effects,
                lookback_days=lookback_days,
                half_life_days=half_life_days, position_weights=position_weights, direct_channels=direct_channels,
                conversion_row_is_touch=conversion_row_is_touch, max_journey_touches=max_journey_touches,
                channel_rules=channel_rules, period=period, timezone=timezone, breakdown=breakdown,
                segment_by=segment_by, conversion_types=conversion_types,
                top_paths=top_paths, max_report_paths=max_report_paths, intervals=intervals,
                export_credits=export_credits,
                spend_upload_id=spend_upload_id, webhook=webhook,
            ),
        )
        key = idempotency_key_for(idempotency_key)
        response = self.request(
            "POST", "/v1/jobs", json=spec, headers={"idempotency-key": key}, idempotent=True
        )
        body = response.json()
        return Job(self, JobRecord.from_json(body), webhook_secret=body.get("webhook_secret"))

    def job(self, job_id: str) -> Job:
        """The job ``job_id`` (``GET /v1/jobs/{id}``)."""
        return Job(self, JobRecord.from_json(self._json("GET", f"/v1/jobs/{job_id}")))

    def jobs(self, *, limit: int | None = None) -> Iterator[Job]:
        """The tenant's jobs, newest first: at most ``limit``, and at most the service's 500."""
        page = 500 if limit is None else max(1, min(limit, 500))
        body = self._json("GET", "/v1/jobs", params={"limit": page})
        for record in body["jobs"]:
            yield Job(self, JobRecord.from_json(record))

    def attribute(
        self,
        data: UploadData,
        *,
        timeout: float | None = None,
        progress: bool | None = None,
        **options: Unpack[JobOptions],
    ) -> AttributionResult:
        """Upload, submit, wait and return the result: :meth:`upload`, :meth:`submit`
        (``options`` are its keywords), :meth:`Job.wait` and :meth:`Job.result`."""
        upload = self.upload(data, progress=progress)
        job = self.submit(upload, **options)
        return job.wait(timeout=timeout, progress=progress).result()

    def _progress(self, progress: bool | None) -> bool | None:
        return self.progress if progress is None else progress


class Job:
    """A handle on one job. ``record`` is the job as last seen; :meth:`refresh` reads it again."""

    def __init__(self, client: Client, record: JobRecord, *, webhook_secret: str | None = None) -> None:
        self.client = client
        self.record = record
        #: The webhook signing secret the service generated at submission (shown only then).
        self.webhook_secret = webhook_secret

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def state(self) -> str:
        return self.record.state

    def __repr__(self) -> str:
        return f"Job(id={self.id!r}, state={self.state!r})"

    def refresh(self) -> JobRecord:
        self.record = JobRecord.from_json(self.client._json("GET", f"/v1/jobs/{self.id}"))
        return self.record

    def wait(
        self,
        timeout: float | None = None,
        *,
        progress: bool | None = None,
        poll_interval: float = 1.0,
        check: bool = True,
    ) -> Job:
        """Polls until the job ends, with a progress bar (stage, chunks, rows).

        Raises :class:`~mta_client.errors.WaitTimeoutError` after ``timeout`` seconds (the job
        goes on). With ``check`` (the default) a failed job raises
        :class:`~mta_client.errors.JobFailedError` (code, message, row/column details) and a
        cancelled one :class:`~mta_client.errors.JobCancelledError`.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        bar = JobBar(show_progress(self.client._progress(progress)), self.id)
        try:
            record = self.record
            delays = poll_delays(poll_interval)
            while True:
                bar.show(record)
                if record.ended:
                    break
                delay = next(delays)
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise WaitTimeoutError(self.id, timeout or 0.0, record.state)
                    delay = min(delay, left)
                time.sleep(delay)
                record = self.refresh()
        finally:
            bar.close()
        if check:
            self._check()
        return self

    def _check(self) -> None:
        failure = self.record.failure()
        if failure is not None:
            raise failure
        if self.record.state == "cancelled":
            raise JobCancelledError(self.id)

    def result(self, *, timeout: float | None = None) -> AttributionResult:
        """The result (waiting for the job first, without a progress bar, if it has not ended)."""
        if not self.record.ended:
            self.wait(timeout=timeout, progress=False, check=False)
        self._check()
        return AttributionResult.from_json(self.client._json("GET", f"/v1/jobs/{self.id}/result"))

    def result_csv(self, table: str = "channels") -> str:
        """A tidy table as the service's CSV (``?format=csv&table=``): ``channels``, ``periods``,
        ``path_length``, ``time_lag``, ``positions``, ``paths``, ``transitions`` (``markov``), ``windows``,
        ``unmatched_cost`` (a job with a cost table), ``markov_pairs``, ``intervals`` (a job with ``intervals``; per part ``period_intervals``,
        ``segment_intervals``, ``segment_period_intervals``, ``window_intervals``, with ``breakdown``
        ``breakdown_intervals`` and per part ``period_breakdown_intervals``, ``segment_breakdown_intervals``), ``segments`` (with
        ``segment_by`` or ``conversion_types``; ``segment_periods`` with ``period`` too), or with ``breakdown``: ``breakdown``, ``period_breakdown``,
        ``segment_breakdown``, ``breakdown_positions`` and ``breakdown_paths``; and each journey report per part: ``period_paths``, ``segment_time_lag``,
        ``segment_period_positions``, ``window_transitions``, ... (``period_``, ``segment_``, ``segment_period_``
        or ``window_`` then the report's name)."""
        self._check()
        return self.client.request("GET", f"/v1/jobs/{self.id}/result", params={"format": "csv", "table": table}).text

    def download_credits(self, path: str | Path | IO[bytes]) -> int:
        """Streams the per-journey credits (Parquet) to ``path`` or a binary file; returns bytes written.
        The job must have been submitted with ``export_credits=True``."""
        response = self.client.request("GET", f"/v1/jobs/{self.id}/credits", stream=True)
        written = 0
        try:
            if isinstance(path, (str, Path)):
                with open(path, "wb") as out:
                    for chunk in response.iter_bytes(CHUNK_BYTES):
                        written += out.write(chunk)
            else:
                for chunk in response.iter_bytes(CHUNK_BYTES):
                    written += path.write(chunk)
        except httpx.TransportError as e:
            raise network_error(e, "GET", f"/v1/jobs/{self.id}/credits") from e
        finally:
            response.close()
        return written

    def credits(self) -> pyarrow.Table:
        """The per-journey credits as an Arrow table (``user_id`` or ``path_row``, ``conversion_time``,
        ``model``, ``channel``, ``conversions``, ``value``); needs the ``pyarrow`` extra."""
        require("pyarrow", "pyarrow")
        import pyarrow.parquet as pq

        with tempfile.SpooledTemporaryFile(max_size=64 << 20) as buffer:
            self.download_credits(buffer)
            buffer.seek(0)
            return pq.read_table(buffer)

    def cancel(self) -> JobRecord:
        """Cancels the job (``DELETE /v1/jobs/{id}``); a job that already ended raises a
        :class:`~mta_client.errors.ConflictError` with code ``job_finished``."""
        self.record = JobRecord.from_json(self.client._json("DELETE", f"/v1/jobs/{self.id}"))
        return self.record

    def timeline(self) -> list[dict[str, Any]]:
        """When which worker started and ended which unit of the job: the latest 1,000 entries."""
        events: list[dict[str, Any]] = self.client._json("GET", f"/v1/jobs/{self.id}/timeline")["events"]
        return events

    def stages(self) -> dict[str, dict[str, int]]:
        """Per stage (``split``, ``attribute``, ``reduce``) over every timeline entry, however many the
        timeline lists: ``units_started``, ``units_ended``, ``first_start_ms``, ``last_end_ms``."""
        stages: dict[str, dict[str, int]] = self.client._json("GET", f"/v1/jobs/{self.id}/timeline")["stages"]
        return stages

    def webhook_deliveries(self) -> dict[str, Any]:
        """The job's webhook delivery: state, event, ``webhook_id`` and every attempt."""
        result: dict[str, Any] = self.client._json("GET", f"/v1/jobs/{self.id}/webhooks")
        return result

    def redeliver_webhook(self) -> None:
        """Sends the job's webhook event again (the job must have ended)."""
        self.client.request("POST", f"/v1/jobs/{self.id}/webhooks/redeliver")
