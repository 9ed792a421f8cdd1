"""The client against the live ``/openapi.json``: a job option, an error code or a result field
that the service gains cannot be forgotten by the client silently."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from typing import Any

import pytest

from mta_client import AsyncClient, Client, JobOptions, Webhook, errors, results, spec
from mta_client.models import JobRecord, Progress, Upload

from conftest import Service


@pytest.fixture(scope="module")
def document(service: Service) -> dict[str, Any]:
    with service.client(service.admin_key) as client:
        return client.openapi()


def schema(document: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = document["components"]["schemas"][name]
    return found


def resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follows ``$ref`` (also inside a one-member ``allOf``/``oneOf`` with null, as utoipa writes
    optional references)."""
    while True:
        if "$ref" in node:
            node = schema(document, node["$ref"].rsplit("/", 1)[1])
            continue
        for combinator in ("allOf", "oneOf", "anyOf"):
            members = [m for m in node.get(combinator, []) if m.get("type") != "null"]
            if len(members) == 1:
                node = members[0]
                break
        else:
            return node


def properties(document: dict[str, Any], name: str) -> set[str]:
    """The property names of a schema, over every member of an ``allOf`` (flattened structs)."""

    def of(node: dict[str, Any]) -> set[str]:
        node = resolve(document, node)
        names = set(node.get("properties", {}))
        for member in node.get("allOf", []):
            names |= of(member)
        return names

    return of(schema(document, name))


def keyword_only(function: Any) -> set[str]:
    return {
        p.name for p in inspect.signature(function).parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def expected_keywords(document: dict[str, Any]) -> set[str]:
    job_spec = properties(document, "JobSpec")
    options = properties(document, "OptionsSpec")
    assert {"upload_id", "options"} <= job_spec
    submit = document["paths"]["/v1/jobs"]["post"]
    headers = {p["name"] for p in submit.get("parameters", []) if p["in"] == "header"}
    unknown_headers = headers - set(spec.HEADER_KEYWORDS)
    assert not unknown_headers, f"submit_job takes headers the client does not send: {unknown_headers}"
    uploads = set(spec.UPLOAD_KEYWORDS)
    return (job_spec - {"upload_id", "options"}) | options | {spec.HEADER_KEYWORDS[h] for h in headers} | uploads


def test_submit_takes_every_field_of_the_job_spec_as_a_keyword(document: dict[str, Any]) -> None:
    expected = expected_keywords(document)
    for function in (Client.submit, AsyncClient.submit):
        assert keyword_only(function) == expected, function.__qualname__
    assert set(JobOptions.__annotations__) == expected
    assert set(spec.SPEC_KEYWORDS) == properties(document, "JobSpec") - {"upload_id", "options"}
    assert set(spec.OPTION_KEYWORDS) == properties(document, "OptionsSpec")


def test_attribute_takes_the_submit_keywords_and_its_own(document: dict[str, Any]) -> None:
    for function in (Client.attribute, AsyncClient.attribute):
        parameters = inspect.signature(function).parameters
        assert keyword_only(function) == {"timeout", "progress"}
        assert parameters["options"].kind is inspect.Parameter.VAR_KEYWORD


def enum_values(document: dict[str, Any], name: str) -> set[str]:
    node = resolve(document, schema(document, name))
    if "enum" in node:
        return set(node["enum"])
    return {v for member in node.get("oneOf", []) for v in member.get("enum", [])}


def test_literal_types_match_the_service_enums(document: dict[str, Any]) -> None:
    assert set(typing.get_args(spec.InputKind)) == enum_values(document, "InputKind")
    assert set(typing.get_args(spec.Model)) == enum_values(document, "ModelId")


def test_every_error_code_of_the_service_has_an_exception_type(document: dict[str, Any]) -> None:
    assert set(errors.KNOWN_CODES) == enum_values(document, "ApiCode")


def test_webhook_takes_every_field_of_the_webhook_spec(document: dict[str, Any]) -> None:
    fields = {f.name for f in dataclasses.fields(Webhook)}
    assert properties(document, "WebhookSpec") == fields


@pytest.mark.parametrize(
    ("cls", "name"),
    [
        (results.Summary, "Summary"),
        (results.AppliedOptions, "Options"),
        (results.ModelResult, "ModelResult"),
        (results.PeriodResult, "PeriodResult"),
        (results.SegmentResult, "SegmentResult"),
        (results.WindowResult, "WindowResult"),
        (results.ChannelWindowRanks, "ChannelWindowRanks"),
        (results.ChannelCredit, "ChannelCredit"),
        (results.ChannelInterval, "ChannelInterval"),
        (results.Intervals, "Intervals"),
        (results.BreakdownRow, "BreakdownRow"),
        (results.BreakdownPositions, "BreakdownPositions"),
        (results.RowInterval, "RowInterval"),
        (results.OrderSelection, "OrderSelection"),
        (results.OrderScore, "OrderScore"),
        (results.PairEffect, "PairEffect"),
        (results.Spend, "SpendSummary"),
        (results.UnmatchedCost, "UnmatchedCost"),
        (results.PeriodCost, "PeriodCost"),
        (results.PositionWeights, "PositionWeights"),
        (results.TopPaths, "TopPaths"),
        (results.PathRow, "PathRow"),
        (results.PathFigures, "PathFigures"),
        (results.Transitions, "Transitions"),
        (Upload, "UploadRecord"),
        (JobRecord, "JobRecord"),
        (Progress, "Progress"),
    ],
)
def test_result_and_record_dataclasses_cover_the_schemas(
    document: dict[str, Any], cls: type[Any], name: str
) -> None:
    # `values` holds a breakdown row's columns: the schema's additional properties.
    fields = {f.name for f in dataclasses.fields(cls)} - {"raw", "model", "values"}
    assert properties(document, name) == fields


def test_a_transition_has_every_field_of_its_schema(document: dict[str, Any]) -> None:
    # ``from`` is a Python keyword: the dataclass calls it ``from_``.
    fields = {f.name.rstrip("_") for f in dataclasses.fields(results.Transition)}
    assert properties(document, "Transition") == fields


def test_window_ranks_name_their_model(document: dict[str, Any]) -> None:
    assert properties(document, "WindowRanks") == {f.name for f in dataclasses.fields(results.WindowRanks)}


def test_the_result_schema_is_what_the_result_class_reads(document: dict[str, Any]) -> None:
    fields = {f.name for f in dataclasses.fields(results.AttributionResult)} - {"raw"}
    assert properties(document, "JobResult") == fields
