"""Compiled FHIRPath: plain paths become direct JSON walks, the rest runs on fhirpathpy.

fhirpathpy costs ~31 µs per expression and defines the semantics; the walk covers the
forms the R4 search parameters use (dotted paths, ``as``, ``where(resolve() is T)``,
``where(field='x')``, top-level ``|``) and is tested against fhirpathpy on the examples.
Patient.deceased (``exists() and != false``) answers plain booleans/dateTimes directly.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import fhirpathpy
from fhirpathpy.models import models

from fhir_server.search.registry import split_top, split_union

Evaluator = Callable[[Any], list[Any]]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_AS_CALL = re.compile(r"^as\(\s*([A-Za-z]+)\s*\)$")
_AS_INFIX = re.compile(r"^(.*\S)\s+as\s+([A-Za-z]+)$", re.S)
_RESOLVE_IS = re.compile(r"^where\(\s*resolve\(\)\s+is\s+([A-Za-z]+)\s*\)$")
_WHERE_EQ = re.compile(r"^where\(\s*([A-Za-z]+)\s*=\s*'([^']*)'\s*\)$")


_ANY_TYPE = ("Resource", "DomainResource")


class _Unsupported(Exception):
    """The expression needs real FHIRPath."""


@dataclass(frozen=True, slots=True)
class _Step:
    name: str
    exact: bool = False  # True when an ``as`` fixed the choice type


@dataclass(frozen=True, slots=True)
class _RefIs:
    target: str


@dataclass(frozen=True, slots=True)
class _Eq:
    field: str
    literal: str


_Op = _Step | _RefIs | _Eq


def _choice(ops: list[_Op], type_name: str) -> None:
    last = ops[-1] if ops else None
    if not isinstance(last, _Step) or last.exact:
        raise _Unsupported(type_name)
    ops[-1] = _Step(last.name + type_name[0].upper() + type_name[1:], exact=True)


def _parse_path(path: str, ops: list[_Op]) -> None:
    for segment in split_top(path, "."):
        if _IDENT.match(segment):
            ops.append(_Step(segment))
        elif m := _AS_CALL.match(segment):
            _choice(ops, m.group(1))
        elif m := _RESOLVE_IS.match(segment):
            ops.append(_RefIs(m.group(1)))
        elif m := _WHERE_EQ.match(segment):
            ops.append(_Eq(m.group(1), m.group(2)))
        else:
            raise _Unsupported(segment)


def _closing(text: str) -> int:
    depth = 0
    for index, ch in enumerate(text):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0:
            return index
    raise _Unsupported(text)


def _parse_part(part: str) -> list[_Op]:
    ops: list[_Op] = []
    text = part.strip()
    if text.startswith("("):
        close = _closing(text)
        inner, rest = text[1:close], text[close + 1 :].strip()
        m = _AS_INFIX.match(inner.strip())
        if not m:
            raise _Unsupported(part)
        _parse_path(m.group(1), ops)
        _choice(ops, m.group(2))
        if rest:
            if not rest.startswith("."):
                raise _Unsupported(part)
            _parse_path(rest[1:], ops)
    else:
        _parse_path(text, ops)
    return ops


def _reference_type(node: dict[str, Any]) -> str | None:
    ref = node.get("reference")
    if isinstance(ref, str) and "/" in ref:
        parts = ref.split("/")
        if len(parts) >= 4 and parts[-2] == "_history":
            return parts[-4]
        return parts[-2]
    declared = node.get("type")
    return declared if isinstance(declared, str) else None


# One compiled op: the nodes after it, from the nodes before it.
_StepFn = Callable[[list[Any]], list[Any]]


def _children(node: Any, name: str, exact: bool) -> list[Any]:
    """``name`` of a dict node as a new list (nulls dropped); ``value`` also finds
    ``valueQuantity`` unless an ``as`` already fixed the type."""
    if not isinstance(node, dict):
        return []
    value = node.get(name)
    if value is None:
        if exact:
            return []
        value = _choice_value(node, name)
        if value is None:
            return []
    if isinstance(value, list):
        return [v for v in value if v is not None] if None in value else value.copy()
    return [value]


def _child_step(name: str, exact: bool) -> _StepFn:
    def step(nodes: list[Any]) -> list[Any]:
        if len(nodes) == 1:
            return _children(nodes[0], name, exact)
        out: list[Any] = []
        for node in nodes:
            out += _children(node, name, exact)
        return out

    return step


def _ref_is_step(target: str) -> _StepFn:
    def step(nodes: list[Any]) -> list[Any]:
        return [n for n in nodes if isinstance(n, dict) and _reference_type(n) == target]

    return step


def _eq_step(name: str, literal: str) -> _StepFn:
    def step(nodes: list[Any]) -> list[Any]:
        return [n for n in nodes if isinstance(n, dict) and n.get(name) == literal]

    return step


def _compile_op(op: _Op) -> _StepFn:
    if isinstance(op, _Step):
        return _child_step(op.name, op.exact)
    if isinstance(op, _RefIs):
        return _ref_is_step(op.target)
    return _eq_step(op.field, op.literal)


def _program(ops: list[_Op]) -> Evaluator:
    """The nodes ``ops`` lead to from a root, as one function."""
    steps = [_compile_op(op) for op in ops]
    first = ops[0] if ops else None
    if not isinstance(first, _Step):
        return lambda root: _follow(steps, [root])
    # Most expressions start with an element of the root: read it without a node list.
    name, exact, rest = first.name, first.exact, steps[1:]
    if not rest:
        return lambda root: _children(root, name, exact)
    return lambda root: _follow(rest, _children(root, name, exact))


def _follow(steps: list[_StepFn], nodes: list[Any]) -> list[Any]:
    for step in steps:
        if not nodes:
            break
        nodes = step(nodes)
    return nodes


def _choice_value(node: dict[str, Any], name: str) -> Any:
    size = len(name)
    for key in node:
        if key.startswith(name) and len(key) > size and key[size].isupper():
            return node[key]
    return None


def compile_fast(expression: str, *, root_type: str | None) -> Evaluator | None:
    """A direct JSON walk for ``expression``, or None when it needs real FHIRPath."""
    try:
        programs: list[list[_Op]] = []
        for part in split_union(expression):
            ops = _parse_part(part)
            if root_type is not None:
                first = ops[0] if ops else None
                if not isinstance(first, _Step) or first.name not in (root_type, *_ANY_TYPE):
                    return None
                ops = ops[1:]
            programs.append(ops)
    except _Unsupported:
        return None
    compiled = [_program(ops) for ops in programs]
    if len(compiled) == 1:
        return compiled[0]

    def union(resource: Any) -> list[Any]:
        out: list[Any] = []
        for program in compiled:
            out += program(resource)
        return out

    return union


def compile_fhirpath(expression: str) -> Evaluator:
    """fhirpathpy (R4 model), compiled once; failures yield no values."""
    compiled = fhirpathpy.compile(expression, models["r4"])

    def evaluate(resource: Any) -> list[Any]:
        try:
            return list(compiled(resource, {}))
        except Exception:  # fhirpathpy raises bare Exceptions for unsupported functions
            return []

    return evaluate


_EXISTS_NOT_FALSE = re.compile(r"^(\w+)\.(\w+)\.exists\(\) and \1\.\2 != false$")


def compile_exists_not_false(expression: str, *, root_type: str | None) -> Evaluator | None:
    """``T.x.exists() and T.x != false`` (Patient.deceased) for a boolean/dateTime choice:
    answered directly when the resource holds just ``xBoolean`` or just ``xDateTime``,
    else by fhirpathpy (extensions, several values, other types)."""
    m = _EXISTS_NOT_FALSE.match(expression.strip())
    if m is None or m.group(1) != root_type:
        return None
    name = m.group(2)
    choices = models["r4"]["choiceTypePaths"].get(f"{root_type}.{name}") or ()
    if "Boolean" not in choices:
        return None
    boolean_key = name + "Boolean"
    datetime_key = name + "DateTime" if "DateTime" in choices else None
    prefixes = (name, "_" + name)
    slow = compile_fhirpath(expression)

    def evaluate(resource: Any) -> list[Any]:
        if isinstance(resource, dict) and resource.get("resourceType") == root_type:
            keys = [key for key in resource if key.startswith(prefixes)]
            if len(keys) == 1:
                value = resource[keys[0]]
                if keys[0] == boolean_key and isinstance(value, bool):
                    return [value]  # exists, and it is itself "!= false"
                if keys[0] == datetime_key and isinstance(value, str):
                    return [True]  # a dateTime is never equal to false
        return slow(resource)

    return evaluate


def compile_expression(expression: str, *, root_type: str | None) -> Evaluator:
    """Fast walk when possible, else fhirpathpy. ``root_type`` None: a relative path."""
    fast = compile_fast(expression, root_type=root_type)
    if fast is None:
        fast = compile_exists_not_false(expression, root_type=root_type)
    if fast is not None:
        return fast
    return compile_fhirpath(expression)
