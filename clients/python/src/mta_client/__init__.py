"""Python client of the mta multi-touch attribution service.

>>> from mta_client import Client
>>> with Client() as client:                       # MTA_URL, MTA_API_KEY
...     result = client.attribute("events.csv", models=["linear", "markov"])
...     result.to_pandas()

See docs/python.md in the repository for the reference and a walk-through.
"""

from . import errors, webhooks
from ._base import RetryPolicy
from ._version import __version__
from .aio import AsyncClient, AsyncJob
from .client import Client, Job
from .errors import (
    ApiError,
    JobCancelledError,
    JobFailedError,
    MtaError,
    Problem,
    RateLimitedError,
    WaitTimeoutError,
)
from .models import JobError, JobRecord, Progress, Upload
from .results import (
    AppliedChannelRules,
    AppliedOptions,
    AttributionResult,
    BreakdownPositions,
    ChannelCredit,
    ChannelInterval,
    Intervals,
    RowInterval,
    ModelResult,
    OrderScore,
    OrderSelection,
    PairEffect,
    PathRow,
    PeriodResult,
    SegmentResult,
    PositionWeights,
    Summary,
    TopPaths,
    Transition,
    Transitions,
)
from .spec import JobOptions, Webhook
from .uploads import ApiUploader, AsyncApiUploader, AsyncUploader, Uploader, UploadSource

__all__ = [
    "__version__",
    "Client",
    "Job",
    "AsyncClient",
    "AsyncJob",
    "RetryPolicy",
    "Upload",
    "JobRecord",
    "JobError",
    "Progress",
    "AttributionResult",
    "Summary",
    "AppliedChannelRules",
    "AppliedOptions",
    "ModelResult",
    "OrderSelection",
    "OrderScore",
    "PairEffect",
    "PeriodResult",
    "SegmentResult",
    "PathRow",
    "BreakdownPositions",
    "TopPaths",
    "Transition",
    "Transitions",
    "ChannelCredit",
    "ChannelInterval",
    "Intervals",
    "RowInterval",
    "PositionWeights",
    "JobOptions",
    "Webhook",
    "Uploader",
    "AsyncUploader",
    "ApiUploader",
    "AsyncApiUploader",
    "UploadSource",
    "MtaError",
    "ApiError",
    "Problem",
    "JobFailedError",
    "JobCancelledError",
    "RateLimitedError",
    "WaitTimeoutError",
    "errors",
    "webhooks",
]
