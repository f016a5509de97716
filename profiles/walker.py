"""The per-node checks of the validator (JSON primitive types, required bindings, invariants)
fused into one walk, with what applies to each type path worked out once.

Per node, in order: JSON booleans and numbers must be JSON booleans and numbers (not
strings), coded children must be in their required value sets (``BindingIndex``), and the
node's invariants (``InvariantSet``) must hold; what applies to a type path is worked out once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from profiles.bindings import BindingIndex, ValueSet, code_issue
from profiles.elements import BACKBONE_TYPES, ElementTable, Node
from profiles.invariants import Invariant, InvariantSet
from profiles.issues import ValidationIssue

# FHIR types whose JSON is a boolean or a number (pydantic would accept "true" or "5").
JSON_TYPES: dict[str, tuple[type, ...]] = {
    "boolean": (bool,),
    "integer": (int,),
    "positiveInt": (int,),
    "unsignedInt": (int,),
    "decimal": (int, float),
}
JSON_TYPE_CODES = frozenset(JSON_TYPES)
_RESOURCE = ""  # descend target of a contained resource: its own resourceType decides


@dataclass(frozen=True, slots=True)
class _Plan:
    """What to do at a node of one type path."""

    # json key -> type path of the child nodes (``_RESOURCE`` for a contained resource)
    descend: dict[str, str]
    # (json key, FHIR type code, accepted JSON classes, whether bool is accepted)
    numbers: tuple[tuple[str, str, tuple[type, ...], bool], ...]
    # (json key, element named in the message, value set)
    bound: tuple[tuple[str, str, ValueSet], ...]
    invariants: tuple[Invariant, ...]


class NodeChecker:
    """Walk a resource once and collect the primitive, binding and invariant issues."""

    def __init__(self, table: ElementTable, bindings: BindingIndex, invariants: InvariantSet):
        self.table = table
        self.bindings = bindings
        self.invariants = invariants
        self._plans: dict[str, _Plan] = {}

    def _plan(self, type_path: str) -> _Plan:
        plan = self._plans.get(type_path)
        if plan is None:
            table = self.table
            descend: dict[str, str] = {}
            for key, child in (table.children.get(type_path) or {}).items():
                if child.type == "Resource":
                    descend[key] = _RESOURCE
                elif child.type in BACKBONE_TYPES:
                    descend[key] = child.path
                elif child.type in table.children:
                    descend[key] = child.type
            numbers = tuple(
                (key, code, JSON_TYPES[code], code == "boolean")
                for key, code in table.keys_of_types(type_path, JSON_TYPE_CODES)
            )
            bound = tuple(
                (key, path if "." in path else key, vs)
                for key, path, vs in self.bindings.by_parent.get(type_path, ())
            )
            plan = _Plan(descend, numbers, bound, self.invariants.by_type.get(type_path, ()))
            self._plans[type_path] = plan
        return plan

    def check(self, resource: dict[str, Any], seen: set[str]) -> list[ValidationIssue]:
        """Issues of every node; primitive-type issues at an expression in ``seen`` are
        left out (the model already reported that element)."""
        out: list[ValidationIssue] = []
        rt = resource.get("resourceType")
        if isinstance(rt, str) and rt in self.table.children:
            self._walk(rt, resource, rt, resource, resource, seen, out)
        return out

    def _walk(
        self,
        type_path: str,
        value: dict[str, Any],
        expr: str,
        resource: dict[str, Any],
        root: dict[str, Any],
        seen: set[str],
        out: list[ValidationIssue],
    ) -> None:
        plan = self._plans.get(type_path) or self._plan(type_path)
        # JSON booleans and numbers must be JSON booleans and numbers, not strings
        for key, type_code, allowed, is_boolean in plan.numbers:
            raw = value.get(key)
            if raw is None:
                continue
            if isinstance(raw, list):
                for i, item in enumerate(raw):
                    if item is not None and not (
                        isinstance(item, allowed) and (is_boolean or not isinstance(item, bool))
                    ):
                        where = f"{expr}.{key}[{i}]"
                        if where not in seen:
                            out.append(_json_type_issue(where, type_code))
            elif not (isinstance(raw, allowed) and (is_boolean or not isinstance(raw, bool))):
                where = f"{expr}.{key}"
                if where not in seen:
                    out.append(_json_type_issue(where, type_code))
        # coded children must be in their required value sets
        for key, element, vs in plan.bound:
            raw = value.get(key)
            if raw is None:
                continue
            if isinstance(raw, list):
                for i, item in enumerate(raw):
                    if item.__class__ is str and vs.contains(item):
                        continue
                    issue = code_issue(vs, item, element=element, expression=f"{expr}.{key}[{i}]")
                    if issue:
                        out.append(issue)
            elif not (raw.__class__ is str and vs.contains(raw)):
                issue = code_issue(vs, raw, element=element, expression=f"{expr}.{key}")
                if issue:
                    out.append(issue)
        # ele-1 and the invariants of the type
        if value.keys() <= _ID_ONLY:
            out.append(ValidationIssue("error", "invariant", expr, _ELE1_CHILDREN))
        for key, raw in value.items():
            if not raw and (raw is None or raw == [] or raw == ""):
                out.append(ValidationIssue("error", "invariant", f"{expr}.{key}", _ELE1_EMPTY))
        if plan.invariants:
            node = Node(type_path, value, expr, resource, root)
            contained = value is not root
            for inv in plan.invariants:
                if inv.root_only and contained:
                    continue
                if not inv.check(value, node):
                    out.append(
                        ValidationIssue(inv.severity, "invariant", expr, f"{inv.key}: {inv.human}")
                    )
        # children, depth first in document order
        descend = plan.descend
        if not descend:
            return
        children = self.table.children
        for key, raw in value.items():
            target = descend.get(key)
            if target is None:
                continue
            if isinstance(raw, list):
                for i, item in enumerate(raw):
                    if isinstance(item, dict):
                        self._child(
                            target, item, f"{expr}.{key}[{i}]", resource, root, seen, out, children
                        )
            elif isinstance(raw, dict):
                self._child(target, raw, f"{expr}.{key}", resource, root, seen, out, children)

    def _child(
        self,
        target: str,
        item: dict[str, Any],
        sub: str,
        resource: dict[str, Any],
        root: dict[str, Any],
        seen: set[str],
        out: list[ValidationIssue],
        children: dict[str, Any],
    ) -> None:
        if target == _RESOURCE:
            inner = item.get("resourceType")
            if isinstance(inner, str) and inner in children:
                self._walk(inner, item, sub, item, root, seen, out)
        else:
            self._walk(target, item, sub, resource, root, seen, out)


_ID_ONLY = frozenset({"id"})
_ELE1_CHILDREN = "ele-1: All FHIR elements must have a @value or children"
_ELE1_EMPTY = "ele-1: empty strings, empty arrays and nulls are not allowed in FHIR JSON"


def _json_type_issue(expr: str, type_code: str) -> ValidationIssue:
    return ValidationIssue("error", "structure", expr, f"{expr}: expected a JSON {type_code}")
