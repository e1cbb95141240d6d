"""Every example in openapi.yaml validates against its own schema.

Covered: `components.examples` (through every place that references them), media-type
`example`/`examples` of request bodies and responses, schema-level `example`s (components
and inline, at any depth: properties, items, oneOf/anyOf/allOf, additionalProperties),
parameter and header `example`/`examples`. Validation uses openapi-schema-validator's OAS 3.0
validator (it understands `nullable`) with its format checker, with `$ref`s resolved inside the
spec. A second test asks more than JSON Schema does: an example may not carry a property its
(closed-looking) object schema does not declare, which catches typos such as `statuscode`.

SPEC=path/to/openapi.yaml overrides the spec under test (default: the repository's).
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from openapi_schema_validator import OAS30ReadValidator, OAS30WriteValidator, oas30_format_checker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

ROOT = Path(__file__).resolve().parents[2]
SPEC_PATH = Path(os.environ.get("SPEC", ROOT / "openapi.yaml"))
SPEC_URI = "urn:webhooks:openapi"

# `https-url` is the contract's own format (validator.js isURL with https only, see
# docs/ARCHITECTURE.md); the server implements the full rule. Examples must at least be https URLs.
FORMAT_CHECKER = copy.deepcopy(oas30_format_checker)


@FORMAT_CHECKER.checks("https-url")
def _is_https_url(value: object) -> bool:
    if not isinstance(value, str):
        return True
    return re.fullmatch(r"https:(//)?[^\s<>/:]+\.[A-Za-z]{2,}(:\d{1,5})?([/?#]\S*)?", value) is not None


def load_spec(path: Path = SPEC_PATH) -> dict:
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def resolve(spec: dict, node: Any) -> tuple[Any, str | None]:
    """Follows a local `$ref` chain; returns the target and its pointer (None if not a ref)."""
    pointer = None
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), f"only local refs are supported: {ref}"
        pointer = ref[1:]
        node = spec
        for token in ref[2:].split("/"):
            token = token.replace("~1", "/").replace("~0", "~")
            node = node[int(token)] if isinstance(node, list) else node[token]
    return node, pointer


class Case:
    """One example and the schema (by JSON pointer into the spec) it must satisfy."""

    def __init__(self, where: str, value: Any, schema_pointer: str, direction: str):
        self.where, self.value, self.schema_pointer, self.direction = where, value, schema_pointer, direction

    def __repr__(self) -> str:  # pytest ids
        return self.where


def iter_schema_examples(spec: dict, schema: Any, pointer: str) -> Iterator[Case]:
    """Schema-level `example`s of `schema` and of every inline subschema."""
    if not isinstance(schema, dict) or "$ref" in schema:
        return  # a $ref is checked where its target is defined
    if "example" in schema:
        yield Case(f"{pointer}/example", schema["example"], pointer, "any")
    for key in ("properties",):
        for name, sub in (schema.get(key) or {}).items():
            yield from iter_schema_examples(spec, sub, f"{pointer}/{key}/{escape(name)}")
    for key in ("items", "additionalProperties", "not"):
        if isinstance(schema.get(key), dict):
            yield from iter_schema_examples(spec, schema[key], f"{pointer}/{key}")
    for key in ("oneOf", "anyOf", "allOf"):
        for i, sub in enumerate(schema.get(key) or []):
            yield from iter_schema_examples(spec, sub, f"{pointer}/{key}/{i}")


def iter_holder_examples(spec: dict, holder: dict, pointer: str, direction: str, used: set[str]) -> Iterator[Case]:
    """`example`/`examples` of a media type, parameter or header, checked against its `schema`."""
    schema = holder.get("schema")
    if schema is None:
        assert "example" not in holder and "examples" not in holder, f"{pointer}: examples without a schema"
        return
    _, target = resolve(spec, schema)
    schema_pointer = target if target is not None else f"{pointer}/schema"
    if target is None:
        yield from iter_schema_examples(spec, schema, f"{pointer}/schema")
    if "example" in holder:
        yield Case(f"{pointer}/example", holder["example"], schema_pointer, direction)
    for name, example in (holder.get("examples") or {}).items():
        resolved, ref = resolve(spec, example)
        if ref is not None:
            used.add(ref)
        where = f"{pointer}/examples/{escape(name)}" + (f" ({ref})" if ref else "")
        if "value" in resolved:
            yield Case(where, resolved["value"], schema_pointer, direction)
        else:
            assert "externalValue" in resolved, f"{where}: example has neither value nor externalValue"


def collect(spec: dict) -> tuple[list[Case], set[str]]:
    cases: list[Case] = []
    used: set[str] = set()
    components = spec.get("components", {})

    for name, schema in (components.get("schemas") or {}).items():
        cases += iter_schema_examples(spec, schema, f"/components/schemas/{escape(name)}")

    def parameters(params: list, pointer: str) -> None:
        for i, param in enumerate(params or []):
            if "$ref" in param:
                continue  # checked under components.parameters
            cases.extend(iter_holder_examples(spec, param, f"{pointer}/{i}", "write", used))

    def content(node: dict, pointer: str, direction: str) -> None:
        for media, holder in (node.get("content") or {}).items():
            cases.extend(iter_holder_examples(spec, holder, f"{pointer}/content/{escape(media)}", direction, used))

    def response(resp: dict, pointer: str) -> None:
        if "$ref" in resp:
            return  # checked under components.responses
        content(resp, pointer, "read")
        for name, header in (resp.get("headers") or {}).items():
            if "$ref" not in header:
                cases.extend(iter_holder_examples(spec, header, f"{pointer}/headers/{escape(name)}", "read", used))

    for name, param in (components.get("parameters") or {}).items():
        cases.extend(iter_holder_examples(spec, param, f"/components/parameters/{escape(name)}", "write", used))
    for name, header in (components.get("headers") or {}).items():
        cases.extend(iter_holder_examples(spec, header, f"/components/headers/{escape(name)}", "read", used))
    for name, body in (components.get("requestBodies") or {}).items():
        content(body, f"/components/requestBodies/{escape(name)}", "write")
    for name, resp in (components.get("responses") or {}).items():
        response(resp, f"/components/responses/{escape(name)}")

    methods = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
    for path, item in (spec.get("paths") or {}).items():
        base = f"/paths/{escape(path)}"
        parameters(item.get("parameters"), f"{base}/parameters")
        for method in methods:
            op = item.get(method)
            if op is None:
                continue
            parameters(op.get("parameters"), f"{base}/{method}/parameters")
            body = op.get("requestBody")
            if body is not None and "$ref" not in body:
                content(body, f"{base}/{method}/requestBody", "write")
            for status, resp in (op.get("responses") or {}).items():
                response(resp, f"{base}/{method}/responses/{status}")
    return cases, used


def validator_for(spec: dict, case: Case):
    registry = Registry().with_resource(SPEC_URI, Resource.from_contents(spec, default_specification=DRAFT4))
    cls = OAS30ReadValidator if case.direction == "read" else OAS30WriteValidator
    return cls({"$ref": f"{SPEC_URI}#{case.schema_pointer}"}, registry=registry, format_checker=FORMAT_CHECKER)


def errors_of(spec: dict, case: Case) -> list[str]:
    return [
        f"{case.where}: {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in validator_for(spec, case).iter_errors(case.value)
    ]


def undeclared_properties(spec: dict, schema: Any, value: Any, at: str = "") -> list[str]:
    """Object keys in `value` that a schema with declared `properties` (and no
    `additionalProperties`) does not declare."""
    schema, _ = resolve(spec, schema)
    if not isinstance(schema, dict):
        return []
    out: list[str] = []
    if isinstance(value, dict) and "properties" in schema and "additionalProperties" not in schema:
        for key, sub in value.items():
            if key not in schema["properties"]:
                out.append(f"{at}/{key}")
            else:
                out += undeclared_properties(spec, schema["properties"][key], sub, f"{at}/{key}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            out += undeclared_properties(spec, schema["items"], item, f"{at}/{i}")
    return out


SPEC = load_spec()
CASES, USED = collect(SPEC)


def test_the_spec_has_examples():
    assert len(CASES) >= 20, f"only {len(CASES)} examples found: is the walker broken?"


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_example_validates_against_its_schema(case: Case):
    assert errors_of(SPEC, case) == []


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_example_declares_only_documented_properties(case: Case):
    schema, _ = resolve(SPEC, {"$ref": "#" + case.schema_pointer})
    assert undeclared_properties(SPEC, schema, case.value) == []


def test_every_component_example_is_used_and_so_validated():
    defined = {f"/components/examples/{escape(n)}" for n in (SPEC.get("components", {}).get("examples") or {})}
    assert defined - USED == set(), "component examples that no schema validates"


# The checker checks: a broken copy of the spec must fail in each kind of place.
BREAKAGES = {
    "component example": lambda s: s["components"]["examples"]["UserWebhookResponse"]["value"]["data"].update(
        events=["nope"]
    ),
    "response example": lambda s: s["components"]["responses"]["NotFound"]["content"]["application/json"]["examples"][
        "ExampleFromSchema"
    ]["value"].update(statusCode="404"),
    "schema example": lambda s: s["components"]["schemas"]["CreateUserWebhookRequest"]["properties"]["secrets"].update(
        example=["a", "b", "c"]
    ),
    "nested oneOf example": lambda s: s["components"]["schemas"]["BadRequestError"]["properties"]["message"].update(
        example=[1]
    ),
    "parameter example": lambda s: s["components"]["parameters"]["WebhookId"].update(example=5),
    "format": lambda s: s["components"]["schemas"]["CreateUserWebhookRequest"]["properties"]["url"].update(
        example="http://example.com/hook"
    ),
    "nullable": lambda s: s["components"]["schemas"]["UserWebhook"]["properties"]["url"].update(example=None),
}


@pytest.mark.parametrize("name", list(BREAKAGES))
def test_a_broken_example_is_caught(name: str):
    spec = copy.deepcopy(SPEC)
    BREAKAGES[name](spec)
    cases, _ = collect(spec)
    assert any(errors_of(spec, c) for c in cases), f"a broken {name} went unnoticed"


def test_an_undeclared_property_is_caught():
    spec = copy.deepcopy(SPEC)
    spec["components"]["responses"]["Forbidden"]["content"]["application/json"]["examples"]["ExampleFromSchema"][
        "value"
    ]["statuscode"] = 403
    cases, _ = collect(spec)
    assert any(undeclared_properties(spec, resolve(spec, {"$ref": "#" + c.schema_pointer})[0], c.value) for c in cases)
