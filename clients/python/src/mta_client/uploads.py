"""What can be uploaded, and how it travels.

:func:`open_source` turns a path, a binary file object, a pandas or polars DataFrame or an
Arrow table into an :class:`UploadSource`: a named byte stream that can be opened again for a
retry. DataFrames and tables are written as Parquet on the fly (in memory, spilling to a
temporary file past 64 MiB), so the service reads typed columns and nothing is left on disk.

How the bytes reach the service is an :class:`Uploader`'s business. Today there is one,
:class:`ApiUploader` (``POST /v1/uploads``, the body streamed through the API). A
direct-to-storage uploader (ask the API for a signed URL, PUT the bytes there, confirm) would
be another class with the same ``upload`` method, passed as ``Client(uploader=…)``.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol, Union

import anyio.to_thread

from ._base import CHUNK_BYTES, UploadBar
from ._optional import require
from .errors import MtaError
from .models import Upload

if TYPE_CHECKING:
    from .aio import AsyncClient
    from .client import Client

__all__ = ["UploadData", "UploadSource", "open_source", "Uploader", "AsyncUploader", "ApiUploader"]

#: A path, a binary file object, a pandas/polars DataFrame or an Arrow table.
UploadData = Union[str, "os.PathLike[str]", IO[bytes], Any]

#: DataFrames up to this size stay in memory while written as Parquet.
SPOOL_BYTES = 64 << 20


@dataclass
class UploadSource:
    """A named byte stream of known (or unknown) size that :meth:`open` starts afresh."""

    name: str
    size: int | None
    opener: Callable[[], IO[bytes]]
    #: False for a file object that cannot seek back: it is sent once, never retried.
    replayable: bool = True
    #: Close each stream :meth:`open` returns once it is read (streams opened from a path).
    close_after_read: bool = False
    cleanup: Callable[[], None] | None = field(default=None, repr=False)
    _opened: int = field(default=0, repr=False)

    def open(self) -> IO[bytes]:
        if self._opened and not self.replayable:
            raise MtaError(f"{self.name} cannot be read again (a file object that cannot seek)")
        self._opened += 1
        return self.opener()

    def chunks(self, bar: UploadBar) -> Iterator[bytes]:
        """The bytes, in chunks, counted on ``bar`` as they are handed to the connection."""
        stream = self.open()
        try:
            while chunk := stream.read(CHUNK_BYTES):
                bar.update(len(chunk))
                yield chunk
        finally:
            self._release(stream)

    async def achunks(self, bar: UploadBar) -> AsyncIterator[bytes]:
        """:meth:`chunks` for the async client: reads run in a worker thread."""
        stream = await anyio.to_thread.run_sync(self.open)
        try:
            while chunk := await anyio.to_thread.run_sync(stream.read, CHUNK_BYTES):
                bar.update(len(chunk))
                yield chunk
        finally:
            self._release(stream)

    def _release(self, stream: IO[bytes]) -> None:
        # The caller's file object and the spooled Parquet buffer stay open for a retry.
        if self.close_after_read:
            stream.close()

    def close(self) -> None:
        if self.cleanup is not None:
            self.cleanup()


def _from_path(path: Path) -> UploadSource:
    if not path.is_file():
        raise MtaError(f"{path} is not a readable file")

    return UploadSource(
        name=path.name, size=path.stat().st_size, opener=lambda: path.open("rb"), close_after_read=True
    )


def _from_file(file: IO[bytes]) -> UploadSource:
    name = os.path.basename(str(getattr(file, "name", "upload"))) or "upload"
    if isinstance(file, io.TextIOBase):
        raise TypeError("open the file in binary mode ('rb')")
    seekable = False
    try:
        seekable = file.seekable()
    except (AttributeError, ValueError, OSError):
        pass
    if not seekable:
        return UploadSource(name=name, size=None, opener=lambda: file, replayable=False)
    start = file.tell()
    end = file.seek(0, io.SEEK_END)
    file.seek(start)

    def opener() -> IO[bytes]:
        file.seek(start)
        return file

    return UploadSource(name=name, size=end - start, opener=opener)


def _frame_kind(data: object) -> str | None:
    module = type(data).__module__.split(".")[0]
    name = type(data).__name__
    if module == "pandas" and name == "DataFrame":
        return "pandas"
    if module == "polars" and name in ("DataFrame", "LazyFrame"):
        return "polars"
    if module == "pyarrow" and name in ("Table", "RecordBatch"):
        return "pyarrow"
    return None


def write_parquet(data: Any, kind: str, sink: IO[bytes]) -> None:
    """Writes a DataFrame or Arrow table as Parquet (zstd) to ``sink``."""
    if kind == "polars":
        require("polars", "polars")
        frame = data.collect() if type(data).__name__ == "LazyFrame" else data
        frame.write_parquet(sink, compression="zstd")
        return
    require("pyarrow", "pyarrow")
    import pyarrow as pa
    import pyarrow.parquet as pq

    if kind == "pandas":
        table = pa.Table.from_pandas(data, preserve_index=False)
    elif type(data).__name__ == "RecordBatch":
        table = pa.Table.from_batches([data])
    else:
        table = data
    pq.write_table(table, sink, compression="zstd")


def _from_frame(data: Any, kind: str) -> UploadSource:
    buffer = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
    try:
        write_parquet(data, kind, buffer)
        size = buffer.tell()
    except BaseException:
        buffer.close()
        raise

    def opener() -> IO[bytes]:
        buffer.seek(0)
        return buffer

    return UploadSource(name=f"{kind}.parquet", size=size, opener=opener, cleanup=buffer.close)


def open_source(data: UploadData) -> UploadSource:
    """The :class:`UploadSource` for a path, a binary file object, a DataFrame or a table."""
    if isinstance(data, UploadSource):
        return data
    if isinstance(data, (str, os.PathLike)):
        return _from_path(Path(data))
    kind = _frame_kind(data)
    if kind is not None:
        return _from_frame(data, kind)
    if hasattr(data, "read"):
        return _from_file(data)
    raise TypeError(
        f"cannot upload a {type(data).__name__}: pass a path, a binary file object, "
        "a pandas or polars DataFrame, or a pyarrow Table"
    )


class Uploader(Protocol):
    """Moves an upload's bytes to the service for the sync :class:`~mta_client.Client`."""

    def upload(self, client: Client, source: UploadSource, *, progress: bool) -> Upload: ...


class AsyncUploader(Protocol):
    """Moves an upload's bytes to the service for the :class:`~mta_client.AsyncClient`."""

    async def upload(self, client: AsyncClient, source: UploadSource, *, progress: bool) -> Upload: ...


class ApiUploader:
    """``POST /v1/uploads`` with the bytes as the body, streamed (with ``Content-Length`` when
    the size is known, so the service refuses a file over its limit before it is sent)."""

    path = "/v1/uploads"

    @staticmethod
    def _headers(source: UploadSource) -> dict[str, str]:
        headers = {"content-type": "application/octet-stream"}
        if source.size is not None:
            headers["content-length"] = str(source.size)
        return headers

    def upload(self, client: Client, source: UploadSource, *, progress: bool) -> Upload:
        bar = UploadBar(progress, source.size, source.name)

        def body() -> Iterator[bytes]:
            bar.restart()
            return source.chunks(bar)

        try:
            response = client.request(
                "POST", self.path, headers=self._headers(source), body=body, replayable=source.replayable
            )
        finally:
            bar.close()
        return Upload.from_json(response.json())

    async def aupload(self, client: AsyncClient, source: UploadSource, *, progress: bool) -> Upload:
        bar = UploadBar(progress, source.size, source.name)

        def body() -> AsyncIterator[bytes]:
            bar.restart()
            return source.achunks(bar)

        try:
            response = await client.request(
                "POST", self.path, headers=self._headers(source), body=body, replayable=source.replayable
            )
        finally:
            bar.close()
        return Upload.from_json(response.json())


class AsyncApiUploader:
    """:class:`ApiUploader` for the :class:`~mta_client.AsyncClient`."""

    def __init__(self) -> None:
        self._inner = ApiUploader()

    async def upload(self, client: AsyncClient, source: UploadSource, *, progress: bool) -> Upload:
        return await self._inner.aupload(client, source, progress=progress)
