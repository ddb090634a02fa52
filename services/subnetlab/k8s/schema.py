"""Structural OpenAPI v3 schemas for CRDs, from the pydantic models of `subnetlab.specs`.

Why a converter and not a hand-written schema: the specs are one definition with two uses
(`subnetlab up` and the operator); a second, hand-kept schema would drift. Pydantic emits
JSON Schema (2020-12); Kubernetes wants a *structural* subset of OpenAPI v3 and refuses
the rest. The conversion, rule by rule:

- `$ref` / `$defs` are inlined (the API server resolves no references);
- `Optional[X]` (`anyOf: [X, null]`) becomes `X` with `nullable: true`;
- `const` becomes a one-value `enum`; a numeric `exclusiveMinimum: x` becomes
  `minimum: x` plus `exclusiveMinimum: true` (OpenAPI v3's boolean form);
- a dict keyed by an enum (`propertyNames: {enum}`) becomes an object with exactly those
  properties; `additionalProperties: false` is dropped (the API server prunes unknown
  fields, and `kubectl` refuses them under its default strict field validation);
- a discriminated union (`oneOf` + `discriminator`) becomes one object with the union of
  the variants' properties, the tag required and enumerated, and CEL rules that require
  each variant's fields and forbid the others' (`x-kubernetes-validations`); defaults that
  belong to one variant are left to the model, where they cannot leak into another. A
  property that several variants share keeps every constraint: the variants must agree on
  the keywords, and a CEL rule only some of them have moves up to the union, guarded by
  the tag (`self.type != 'vllm' || !has(self.url) || <rule on self.url>`), so nothing is
  loosened;
- `title` is dropped (noise in `kubectl explain`); descriptions and defaults stay.

Anything else that a structural schema cannot hold raises `SchemaError` naming the path,
so a new spec field of an unsupported shape fails the unit tests, not a cluster.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from pydantic import BaseModel

from subnetlab.specs import cel

Schema = dict[str, Any]
_RULES = "x-kubernetes-validations"

_KEPT = {
    "type", "description", "default", "enum", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "minLength", "maxLength", "pattern", "minItems", "maxItems",
    "format", "nullable", "required", "x-kubernetes-validations",
}
_DROPPED = {"title", "discriminator", "additionalProperties", "propertyNames", "$defs", "const",
            "properties", "items", "anyOf", "oneOf", "$ref"}


class SchemaError(ValueError):
    """A pydantic schema shape that cannot become a structural Kubernetes schema."""


def model_schema(model: type[BaseModel]) -> Schema:
    """The structural schema of `model` (camelCase, as specs are written)."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return convert(raw, raw.get("$defs", {}), model.__name__)


def convert(node: Schema, defs: dict[str, Schema], path: str) -> Schema:
    """One JSON-Schema node, with its `$defs`, as a structural schema node."""
    node = _resolve(node, defs, path)
    if "anyOf" in node:
        return _any_of(node, defs, path)
    if "oneOf" in node:
        return _union(node, defs, path)
    out: Schema = {k: copy.deepcopy(v) for k, v in node.items() if k in _KEPT}
    unknown = set(node) - _KEPT - _DROPPED
    if unknown:
        raise SchemaError(f"{path}: unsupported schema keywords {sorted(unknown)}")
    if "const" in node:
        out["enum"] = [node["const"]]
        out.setdefault("type", _type_of(node["const"], path))
    if isinstance(node.get("exclusiveMinimum"), int | float) and not isinstance(
            node.get("exclusiveMinimum"), bool):
        out["minimum"], out["exclusiveMinimum"] = node["exclusiveMinimum"], True
    if isinstance(node.get("exclusiveMaximum"), int | float) and not isinstance(
            node.get("exclusiveMaximum"), bool):
        out["maximum"], out["exclusiveMaximum"] = node["exclusiveMaximum"], True
    kind = out.get("type")
    if kind is None:
        raise SchemaError(f"{path}: no type (structural schemas need one on every node)")
    if kind == "object":
        _object(node, out, defs, path)
    elif kind == "array":
        if "items" not in node:
            raise SchemaError(f"{path}: an array needs `items`")
        out["items"] = convert(node["items"], defs, f"{path}[]")
    return out


def _resolve(node: Schema, defs: dict[str, Schema], path: str) -> Schema:
    """Inline a `$ref`, keeping the referring node's own description and default."""
    if "$ref" not in node:
        return node
    name = str(node["$ref"]).rsplit("/", 1)[-1]
    if name not in defs:
        raise SchemaError(f"{path}: unresolvable reference {node['$ref']}")
    merged = {**defs[name], **{k: v for k, v in node.items() if k != "$ref"}}
    rules = [*defs[name].get(_RULES, []), *node.get(_RULES, [])]
    if rules:  # the field's rules add to the model's own, never replace them
        merged[_RULES] = rules
    return merged


def _object(node: Schema, out: Schema, defs: dict[str, Schema], path: str) -> None:
    properties: dict[str, Schema] = node.get("properties", {})
    names = node.get("propertyNames", {})
    extra = node.get("additionalProperties")
    if properties:
        out["properties"] = {name: convert(sub, defs, f"{path}.{name}")
                             for name, sub in properties.items()}
    elif "enum" in names:
        if not isinstance(extra, dict):
            raise SchemaError(f"{path}: an enum-keyed object needs a value schema")
        value = convert(extra, defs, f"{path}.*")
        out["properties"] = {str(key): copy.deepcopy(value) for key in names["enum"]}
    elif isinstance(extra, dict):
        out["additionalProperties"] = convert(extra, defs, f"{path}.*")
    if out.get("required") == []:
        del out["required"]


def _any_of(node: Schema, defs: dict[str, Schema], path: str) -> Schema:
    """`anyOf: [X, {type: null}]` -> X, nullable; a union of constants of one type (a
    `Literal` union) -> an enum. Other unions are refused."""
    options = [o for o in node["anyOf"] if o.get("type") != "null"]
    consts = [o["const"] for o in options if "const" in o]
    if len(consts) == len(options) > 1 and len({_type_of(c, path) for c in consts}) == 1:
        options = [{"type": _type_of(consts[0], path), "enum": consts}]
    if len(options) != 1:
        raise SchemaError(f"{path}: only Optional[X] unions are supported, got anyOf")
    inner = convert(options[0], defs, path)
    if "description" in node:
        inner["description"] = node["description"]
    rules = [*inner.get(_RULES, []), *node.get(_RULES, [])]
    if rules:  # the field's rules add to its type's, never replace them
        inner[_RULES] = rules
    if node.get("default") is not None:
        inner["default"] = node["default"]
    if len(options) < len(node["anyOf"]):
        inner["nullable"] = True
    return inner


def _union(node: Schema, defs: dict[str, Schema], path: str) -> Schema:
    """A discriminated union as one object: the tag enumerated, each variant's fields
    required or forbidden by CEL rules, depending on the tag."""
    tag = (node.get("discriminator") or {}).get("propertyName")
    if not tag:
        raise SchemaError(f"{path}: oneOf without a discriminator is not supported")
    variants: dict[str, Schema] = {}
    for option in node["oneOf"]:
        variant = convert(option, defs, path)
        tags = variant.get("properties", {}).get(tag, {}).get("enum", [])
        if len(tags) != 1:
            raise SchemaError(f"{path}: every variant needs one constant `{tag}`")
        variants[str(tags[0])] = variant
    shared: dict[str, list[tuple[str, Schema]]] = {}
    for name, variant in variants.items():
        for prop, sub in variant["properties"].items():
            shared.setdefault(prop, []).append((name, sub))
    properties: dict[str, Schema] = {tag: {}}  # first, as the variants have it
    rules = []
    for prop, having in shared.items():
        if prop != tag:  # the tag's schema is the union's own, below
            properties[prop], lifted = _merge_property(tag, prop, having, f"{path}.{prop}")
            rules += lifted
    properties[tag] = {"type": "string", "enum": list(variants),
                       "description": f"Which kind: {', '.join(variants)}."}
    for name, variant in variants.items():
        for prop in variant.get("required", []):
            rules.append(cel(f"self.{tag} != '{name}' || has(self.{prop})",
                             f"{prop} is required when {tag} is {name}", f".{prop}"))
    for prop, having in shared.items():
        names = [name for name, _ in having]
        if prop != tag and len(names) < len(variants):
            rules.append(cel(f"!has(self.{prop}) || self.{tag} in "
                             + "[" + ", ".join(f"'{v}'" for v in names) + "]",
                             f"{prop} only applies when {tag} is {' or '.join(names)}",
                             f".{prop}"))
    out: Schema = {"type": "object", "required": [tag], "properties": properties,
                   "x-kubernetes-validations": rules}
    if "description" in node:
        out["description"] = node["description"]
    return out


_LOOSE = {"default", "description", "nullable", _RULES}
"""Keywords variants may differ on: defaults stay with the model, a description is kept
when all agree, nullability is the union's, and rules are moved up (see `_lift`)."""


def _merge_property(tag: str, prop: str, having: list[tuple[str, Schema]],
                    path: str) -> tuple[Schema, list[dict[str, str]]]:
    """A property of one or more variants: the schema they share, and the CEL rules that
    only some variants have, lifted to the union and guarded by the tag.

    Variants that disagree on a constraint keyword (say one `maxLength` each) are refused:
    one schema cannot hold both, and dropping either would let the API server store what
    the model refuses.
    """
    schemas = [sub for _, sub in having]
    strict = [{k: v for k, v in sub.items() if k not in _LOOSE} for sub in schemas]
    differ = sorted({k for one in strict for k in set(one) | set(strict[0])
                     if one.get(k) != strict[0].get(k)})
    if differ:
        raise SchemaError(f"{path}: the variants disagree on {differ}; give the field one "
                          "schema in every variant")
    merged: Schema = dict(strict[0])
    descriptions = {sub.get("description") for sub in schemas}
    if len(descriptions) == 1 and None not in descriptions:
        merged["description"] = descriptions.pop()
    if any(sub.get("nullable") for sub in schemas):
        merged["nullable"] = True
    rule_lists = [sub.get(_RULES, []) for sub in schemas]
    common = [r for r in rule_lists[0] if all(r in rs for rs in rule_lists)]
    if common:
        merged[_RULES] = common
    lifted = [_lift(rule, tag, name, prop, path) for (name, _), rs in zip(having, rule_lists,
                                                                            strict=True)
              for rule in rs if rule not in common]
    return merged, lifted


_SELF = re.compile(r"\bself\b")


def _lift(rule: dict[str, str], tag: str, variant: str, prop: str,
          path: str) -> dict[str, str]:
    """A rule on `self` (the property) as a rule on the union that applies to `variant`."""
    if "oldSelf" in rule["rule"]:
        raise SchemaError(f"{path}: a transition rule of one variant cannot move to the union")
    inner = _SELF.sub(f"self.{prop}", rule["rule"])
    return cel(f"self.{tag} != '{variant}' || !has(self.{prop}) || ({inner})",
               f"{prop}: {rule['message']}", f".{prop}{rule.get('fieldPath', '')}")


def _type_of(value: object, path: str) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    raise SchemaError(f"{path}: constant {value!r} has no OpenAPI type")
