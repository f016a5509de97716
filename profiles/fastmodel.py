"""A conservative shortcut in front of the fhir.resources model validation.

``surely_valid(model, resource)`` returns True only when ``model.model_validate(resource)``
is certain to succeed; otherwise False, and the caller runs the real validation (which then
reports the errors exactly as before). Running the real validation is correct in every case;
this walk only exists because fhir.resources validates every nested element through several
Python-level hooks, which makes it the largest single cost of a write.

What the walk rebuilds from the model classes themselves (``model_fields`` and the
``get_required_fields`` / ``get_one_of_many_fields`` hooks), for every element:

* every key is the alias of a field (``extra="forbid"``), or ``resourceType`` naming the
  model's own resource type (``FHIRAbstractModel.__init__`` pops and compares it);
* lists where the field is a list and single values where it is not, no ``None`` anywhere
  (``reject_null_complex_elements``), complex values are dicts;
* required fields present, at most one member of each choice group and one when the group
  is required, ``_x`` extension siblings carry an id or an extension;
* contained resources name a known resource type;
* each primitive value passes a ``TypeAdapter`` built from the field's own annotation, i.e.
  the very same pydantic-core schema and fhir_core validators (results are memoized).

Anything else (keys given by field name, ``fhir_comments``, unexpected validators on a class,
very deep nesting, ...) answers False, which only costs the real validation.
"""

from __future__ import annotations

import importlib
import threading
import types
import typing
from dataclasses import dataclass
from typing import Any

from fhir_core.constraints import FHIR_PRIMITIVES_MAPS, FHIR_TYPES_MAPS
from fhir_core.fhirabstractmodel import FHIRAbstractModel
from fhir_core.types import FhirBase, FhirElementOrResourceBase
from pydantic import TypeAdapter

__all__ = ["surely_valid"]

# Nesting deeper than this goes to the real validation (which recurses in Python).
MAX_DEPTH = 24
# Memoized primitive results: (adapter index, type, value) -> valid; cleared when full. Only
# coded and numeric types are memoized: free text, dates and ids may be patient data, which
# should not outlive the request in a cache.
MEMO_LIMIT = 20_000
MEMO_MAX_STR = 200
_MEMO_KINDS = frozenset(
    {
        "boolean",
        "code",
        "uri",
        "url",
        "canonical",
        "oid",
        "integer",
        "integer64",
        "positiveInt",
        "unsignedInt",
        "decimal",
    }
)

_PRIMITIVE = 0
_MODEL = 1
_RESOURCE = 2
_UNSUPPORTED = 3

# The model validators fhir.resources declares; a class with any other one is never shortcut.
_KNOWN_VALIDATORS = frozenset(
    {
        "reject_null_complex_elements",
        "validate_after_model_construction",
        "validate_extension_or_fhir_comment_required",
    }
)
_PRIMITIVE_EXTENSION = "validate_extension_or_fhir_comment_required"
# The configuration the primitive ``TypeAdapter``s assume (a changed global config: no shortcut).
_CONFIG = {"extra": "forbid", "validate_assignment": True, "populate_by_name": True}
FHIR_COMMENTS = "fhir_comments"
_PRIMITIVE_TYPES = frozenset({str, int, bool, float})


@dataclass(slots=True)
class _Field:
    kind: int
    is_list: bool
    target: Any  # adapter index, model class, or the ResourceType class


@dataclass(slots=True)
class _Spec:
    """What one model class accepts (``supported`` False: never shortcut)."""

    supported: bool
    resource_type: str = ""
    fields: dict[str, _Field] | None = None
    required: tuple[str, ...] = ()
    choices: tuple[tuple[tuple[str, ...], bool], ...] = ()
    needs_id_or_extension: bool = False
    resource_type_key: bool = False


_specs: dict[type, _Spec] = {}
_adapters: list[TypeAdapter[Any]] = []
_memoized: list[bool] = []  # per adapter: are its results memoized
_adapter_index: dict[Any, int] = {}
_memo: dict[tuple[int, type, Any], bool] = {}
_resources: dict[tuple[str, str], type] = {}
_lock = threading.Lock()


def _strip_none(annotation: Any) -> Any:
    """``X | None`` -> ``X`` (only at the top; an ``Annotated[Union[...]]`` stays whole)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
        return typing.Union[tuple(args)]  # noqa: UP007
    return annotation


def _kind(annotation: Any) -> str | None:
    try:
        return FHIR_PRIMITIVES_MAPS.get(annotation)
    except TypeError:  # unhashable
        return None


def _adapter(annotation: Any) -> int:
    try:
        key: Any = annotation
        hash(key)
    except TypeError:
        key = repr(annotation)
    index = _adapter_index.get(key)
    if index is None:
        _adapters.append(TypeAdapter(annotation))
        _memoized.append(_kind(annotation) in _MEMO_KINDS)
        index = _adapter_index[key] = len(_adapters) - 1
    return index


def _field(annotation: Any) -> _Field:
    inner = _strip_none(annotation)
    is_list = typing.get_origin(inner) is list
    if is_list:
        (inner,) = typing.get_args(inner)
        inner = _strip_none(inner)
    if isinstance(inner, type) and issubclass(inner, FhirBase):
        if issubclass(inner, FhirElementOrResourceBase):
            base = inner.get_model_klass()
            if base.__name__ != "Resource":
                return _Field(_UNSUPPORTED, is_list, None)
            return _Field(_RESOURCE, is_list, inner)
        return _Field(_MODEL, is_list, inner.get_model_klass())
    if typing.get_origin(inner) is list:
        return _Field(_UNSUPPORTED, is_list, None)
    return _Field(_PRIMITIVE, is_list, _adapter(inner))


def _build(model: type[FHIRAbstractModel]) -> _Spec:
    validators = set(model.__pydantic_decorators__.model_validators)
    decorators = model.__pydantic_decorators__
    if (
        not validators <= _KNOWN_VALIDATORS
        or decorators.field_validators
        or decorators.validators
        or decorators.root_validators
        or model.__init__ is not FHIRAbstractModel.__init__
        or dict(model.model_config) != _CONFIG
    ):
        return _Spec(False)
    fields: dict[str, _Field] = {}
    required: list[str] = []
    for name, info in model.model_fields.items():
        alias = info.alias or name
        if info.metadata:
            return _Spec(False)
        if name == FHIR_COMMENTS:
            fields[alias] = _Field(_UNSUPPORTED, False, None)
            continue
        fields[alias] = _field(info.annotation)
        if info.is_required():
            required.append(alias)
        elif info.default is not None:
            return _Spec(False)
    instance = model.model_construct()
    aliases = model.get_alias_mapping()
    for element, ext in instance.get_required_fields():
        if element not in aliases or (ext is not None and ext not in model.model_fields):
            return _Spec(False)
        required.append(model.model_fields[aliases[element]].alias or element)
    choices = []
    for prefix, names in instance.get_one_of_many_fields().items():
        infos = [model.model_fields.get(n) for n in names]
        if not names or any(i is None for i in infos):
            return _Spec(False)
        extra = infos[0].json_schema_extra  # type: ignore[union-attr]
        if not isinstance(extra, dict) or extra.get("one_of_many") != prefix:
            return _Spec(False)
        choices.append(
            (
                tuple(i.alias or n for i, n in zip(infos, names, strict=True)),  # type: ignore[union-attr]
                extra.get("one_of_many_required") is True,
            )
        )
    return _Spec(
        True,
        resource_type=model.__resource_type__,
        fields=fields,
        required=tuple(dict.fromkeys(required)),
        choices=tuple(choices),
        needs_id_or_extension=_PRIMITIVE_EXTENSION in validators,
        resource_type_key="resourceType" not in model.model_fields,
    )


def _spec(model: type) -> _Spec:
    spec = _specs.get(model)
    if spec is None:
        with _lock:
            spec = _specs.get(model)
            if spec is None:
                try:
                    spec = _build(model)
                except Exception:  # an unexpected model shape: never shortcut it
                    spec = _Spec(False)
                _specs[model] = spec
    return spec


def _primitive_ok(index: int, value: Any) -> bool:
    cls = value.__class__
    if cls not in _PRIMITIVE_TYPES:
        return False  # lists, dicts, None ...: the real validation decides
    memo = _memoized[index] and cls is not float and (cls is not str or len(value) <= MEMO_MAX_STR)
    if memo:
        found = _memo.get((index, cls, value))
        if found is not None:
            return found
    try:
        _adapters[index].validate_python(value)
        ok = True
    except Exception:
        ok = False
    if memo:
        if len(_memo) >= MEMO_LIMIT:
            _memo.clear()
        _memo[(index, cls, value)] = ok
    return ok


def _contained_model(field: _Field, value: dict[str, Any]) -> type | None:
    rt = value.get("resourceType")
    if not isinstance(rt, str):
        return None
    prefix: str = field.target._prefix
    model = _resources.get((prefix, rt))
    if model is None:
        path = FHIR_TYPES_MAPS.get(prefix + rt + "Type")
        if path is None:
            return None
        module, _, name = path.rpartition(".")  # e.g. fhir.resources.R4B.patient.Patient
        model = getattr(importlib.import_module(module), name, None)
        if not (
            isinstance(model, type)
            and issubclass(model, FHIRAbstractModel)
            and model.has_resource_base()
            and model.__resource_type__ == rt
        ):
            return None
        _resources[prefix, rt] = model
    return model


def _ok(spec: _Spec, value: dict[str, Any], depth: int) -> bool:
    if not spec.supported or depth > MAX_DEPTH:
        return False
    fields = spec.fields
    assert fields is not None
    for key, raw in value.items():
        field = fields.get(key)
        if field is None:
            if key == "resourceType" and spec.resource_type_key and raw == spec.resource_type:
                continue
            return False
        items: list[Any] | tuple[Any]
        if field.is_list:
            if raw.__class__ is not list:
                return False
            items = raw
        else:
            items = (raw,)
        kind = field.kind
        for item in items:
            if kind == _PRIMITIVE:
                if not _primitive_ok(field.target, item):
                    return False
            elif item.__class__ is not dict:
                return False
            elif kind == _MODEL:
                if not _ok(_spec(field.target), item, depth + 1):
                    return False
            elif kind == _RESOURCE:
                model = _contained_model(field, item)
                if model is None or not _ok(_spec(model), item, depth + 1):
                    return False
            else:
                return False
    for alias in spec.required:
        if alias not in value:
            return False
    for group, required in spec.choices:
        found = 0
        for alias in group:
            if alias in value:
                found += 1
        if found > 1 or (required and not found):
            return False
    return not spec.needs_id_or_extension or "id" in value or "extension" in value


def surely_valid(model: type, resource: dict[str, Any]) -> bool:
    """True only if ``model.model_validate(resource)`` certainly raises nothing."""
    try:
        return (
            isinstance(model, type)
            and issubclass(model, FHIRAbstractModel)
            and model.has_resource_base()
            and _ok(_spec(model), resource, 0)
        )
    except Exception:  # never let the shortcut decide on something it did not foresee
        return False
