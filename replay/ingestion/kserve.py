"""KServe's payload logger: each inference request, and its response when it was
answered 200, posted as a CloudEvent in binary mode to the URL it is given:

    ce-id: 5b0c...            (the request's and the response's are the same)
    ce-type: org.kubeflow.serving.inference.request   (or ...response)
    ce-source, ce-time, ce-inferenceservicename, ce-namespace, ce-component, ce-endpoint
    body: the request or the response as the model server took or gave it

Requests and responses are in the Open Inference Protocol (v2: `inputs` and `outputs`
tensors) or KServe's v1 (`instances`, `predictions`). A person's identifier is the
request's `parameters.subject` (or `parameters.subjects`, one per row). A request of
several rows is several decisions, `CE-ID/0`, `/1`, ...
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from replay.errors import BadInput
from replay.ingestion.events import Made, parse_time, read_json
from replay.ingestion.tables import json_outputs, json_rows
from replay.manifests.canonical import canonical_json
from replay.manifests.manifest import Manifest
from replay.manifests.open_inference import outputs_of_response, rows_of_request
from replay.manifests.open_inference import subjects_of as subjects_of_parameters

SOURCE = "kserve"
TYPES = {
    "org.kubeflow.serving.inference.request": "request",
    "org.kubeflow.serving.inference.response": "response",
}


@dataclass(frozen=True)
class CloudEvent:
    """One half of a decision, as KServe's logger posted it."""

    id: str
    part: str  # request or response
    service: str  # the InferenceService, '' if the event names none
    time: str | None
    attributes: dict[str, str]  # every ce- header, for the record
    body: str

    @classmethod
    def of(cls, headers: Mapping[str, str], body: bytes) -> CloudEvent:
        """The event of a binary-mode CloudEvent's headers and body; BadInput if it is
        not one of KServe's inference events."""
        attributes = {
            name.lower()[3:]: value
            for name, value in headers.items()
            if name.lower().startswith("ce-")
        }
        event_id = attributes.get("id", "").strip()
        if not event_id:
            raise BadInput("not a CloudEvent in binary mode: no ce-id header")
        part = TYPES.get(attributes.get("type", ""))
        if part is None:
            raise BadInput(f"ce-type {attributes.get('type', '')[:80]!r} is not KServe's")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise BadInput(f"the {part} body is not UTF-8 text") from None
        return cls(
            id=event_id[:200],
            part=part,
            service=attributes.get("inferenceservicename", ""),
            time=attributes.get("time"),
            attributes=attributes,
            body=text,
        )

    @cached_property
    def parsed(self) -> Any:
        """The body's JSON, read once when it is JSON (a request's is read for its people
        as it arrives, and again for its decisions when its response comes in the same
        batch); BadInput if it is not, or is nested too deep."""
        try:
            return read_json(self.body)
        except BadInput as problem:
            raise BadInput(f"the {self.part} is {problem}") from None

    @property
    def payload(self) -> bytes:
        """What is kept of the event while it is held: its attributes and body."""
        return canonical_json(self.kept())

    def kept(self) -> dict[str, Any]:
        return {"attributes": self.attributes, "body": self.body}

    @classmethod
    def held(cls, payload: bytes) -> CloudEvent:
        kept = json.loads(payload)
        attributes = kept["attributes"]
        return cls(
            id=attributes["id"],
            part=TYPES[attributes["type"]],
            service=attributes.get("inferenceservicename", ""),
            time=attributes.get("time"),
            attributes=attributes,
            body=kept["body"],
        )


def subjects_of(request: CloudEvent) -> list[str | None] | None:
    """The people a request names (one per row), if it names any; a body that does not
    parse names none (it is refused when its response comes)."""
    try:
        body = request.parsed
    except BadInput:
        return None
    parameters = body.get("parameters") if isinstance(body, Mapping) else None
    if not isinstance(parameters, Mapping):
        return None
    if isinstance(parameters.get("subject"), str):
        return [parameters["subject"]]
    listed = parameters.get("subjects")
    if isinstance(listed, list) and all(isinstance(item, str | None) for item in listed):
        return list(listed)
    return None


def row_ids(event_id: str, rows: int) -> list[str]:
    """The source ids of a request's decisions: the event's id for one row."""
    return [event_id] if rows == 1 else [f"{event_id}/{index}" for index in range(rows)]


def decisions_of(
    request: CloudEvent, response: CloudEvent, deployment: str, manifest: Manifest
) -> list[Made]:
    """The decisions of a request and its response; BadInput says why there are none."""
    asked, answered = request.parsed, response.parsed
    rows = _rows(asked, manifest)
    outputs = _outputs(answered, manifest, len(rows))
    if len(outputs) != len(rows):
        raise BadInput(f"{len(rows)} input rows but {len(outputs)} outputs")
    parameters = asked.get("parameters") if isinstance(asked, Mapping) else None
    subjects = subjects_of_parameters(
        parameters if isinstance(parameters, Mapping) else {}, len(rows)
    )
    moment = _time(request) or _time(response)
    return [
        Made(
            source=SOURCE,
            source_id=source_id,
            deployment=deployment,
            time=moment,
            inputs=row,
            outputs=row_outputs,
            payload=b"",  # a pair that is no decision is quarantined whole (`pair_payload`)
            subject=subject,
        )
        for source_id, row, row_outputs, subject in zip(
            row_ids(request.id, len(rows)), rows, outputs, subjects, strict=True
        )
    ]


def pair_payload(request: CloudEvent, response: CloudEvent) -> bytes:
    return canonical_json({"request": request.kept(), "response": response.kept()})


def _rows(body: Any, manifest: Manifest) -> list[dict[str, Any]]:
    if _tensors(body, "inputs"):
        rows, _, _ = rows_of_request(body, manifest.schema)
        return rows
    return json_rows(body, manifest)


def _outputs(body: Any, manifest: Manifest, rows: int) -> list[dict[str, Any]]:
    if _tensors(body, "outputs"):
        return outputs_of_response(body, manifest.schema.output, rows)
    return json_outputs(body, manifest)


def _tensors(body: Any, key: str) -> bool:
    """Whether `body[key]` holds Open Inference Protocol tensors (v2), not rows (v1)."""
    items = body.get(key) if isinstance(body, Mapping) else None
    if not isinstance(items, list) or not items:
        return False
    return all(isinstance(item, Mapping) and "datatype" in item for item in items)


def _time(event: CloudEvent) -> datetime | None:
    try:
        return parse_time(event.time) if event.time else None
    except BadInput:
        return None
