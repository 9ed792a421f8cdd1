"""The async flavour end to end (over asyncio, as anyio runs it)."""

from __future__ import annotations

import io
from pathlib import Path

import anyio
import pandas as pd
import pyarrow as pa
import pytest

from mta_client import AsyncClient, JobFailedError
from mta_client.errors import ConflictError, NotFoundError

from conftest import Service, close_to


def run(test: object) -> None:
    anyio.run(test)  # type: ignore[arg-type]


def test_async_upload_submit_wait_result(service: Service, key: str, events_csv: Path, tmp_path: Path) -> None:
    local = service.attribute_locally(events_csv, "--models", "linear,markov")

    async def main() -> None:
        async with AsyncClient(url=service.url, api_key=key, progress=False) as client:
            upload = await client.upload(events_csv)
            job = await client.submit(upload, models=["linear", "markov"], export_credits=True)
            await job.wait(timeout=120)
            result = await job.result()
            remote = dict(result.raw)
            assert remote.pop("job_id") == job.id
            assert close_to(remote, local) == []
            assert list(result.to_pandas().columns)[:2] == ["model", "channel"]
            csv = await job.result_csv()
            assert len(pd.read_csv(io.StringIO(csv))) == len(result.to_pandas())
            credits = await job.credits()
            assert isinstance(credits, pa.Table) and credits.num_rows > 0
            written = await job.download_credits(tmp_path / "c.parquet")
            assert written == (tmp_path / "c.parquet").stat().st_size
            listed = [j.id async for j in client.jobs()]
            assert job.id in listed
            assert (await client.job(job.id)).state == "succeeded"
            assert (await job.timeline())
            stages = await job.stages()
            assert stages["split"]["units_started"] >= 1 and stages["attribute"]["units_ended"] >= 1
            with pytest.raises(ConflictError):
                await job.cancel()
            with pytest.raises(NotFoundError):
                await client.job("00000000-0000-4000-8000-000000000000")
            frame_result = await client.attribute(pd.read_csv(events_csv), models=["linear", "markov"])
            remote = dict(frame_result.raw)
            remote.pop("job_id")
            assert close_to(remote, local) == []

    run(main)


def test_async_failed_job(service: Service, key: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,timestamp,channel,conversion\nu1,2026-01-01,email,0\nu1,soon,email,1\n")

    async def main() -> None:
        async with AsyncClient(url=service.url, api_key=key, progress=False) as client:
            with pytest.raises(JobFailedError) as failed:
                await client.attribute(bad)
            assert failed.value.details[0].row == 2
            assert failed.value.details[0].column == "timestamp"

    run(main)
