"""Errors of the service layer; ``api/errors.py`` turns each into an OperationOutcome.

    FhirError(status, code)
     ├── BadRequest            400 invalid / structure / value
     ├── NotFound              404 not-found (not-supported: an unknown type or operation)
     ├── Gone                  410 deleted
     ├── MethodNotAllowed      405 not-supported
     ├── Conflict              409 conflict
     ├── PreconditionFailed    412 conflict (If-Match, multiple conditional matches)
     ├── Unprocessable         422 processing / business rules
     ├── ServiceUnavailable    503 transient (store down)
     └── InsufficientStorage   507 no-store (store or disk full; reads keep working)

Messages name elements and parameters, never values from the resource (no PHI).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Issue:
    severity: str  # fatal | error | warning | information
    code: str  # OperationOutcome issue type
    diagnostics: str
    expression: tuple[str, ...] = ()


@dataclass
class FhirError(Exception):
    status: int
    code: str
    diagnostics: str
    expression: tuple[str, ...] = ()
    extra_issues: list[Issue] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.diagnostics)

    @property
    def issues(self) -> list[Issue]:
        main = Issue("error", self.code, self.diagnostics, self.expression)
        return [main, *self.extra_issues]


def bad_request(message: str, *expression: str, code: str = "invalid") -> FhirError:
    return FhirError(400, code, message, expression)


def bad_search(param: str, message: str) -> FhirError:
    """A search parameter (or conditional criterion) the server cannot accept."""
    return bad_request(f"search parameter {param}: {message}", param)


def not_found(message: str) -> FhirError:
    return FhirError(404, "not-found", message)


def not_supported(message: str) -> FhirError:
    """A resource type or operation this server does not have (no secret: its
    CapabilityStatement lists what it serves)."""
    return FhirError(404, "not-supported", message)


def unsupported_target(segment: str) -> FhirError:
    """The 404 for a path segment naming a type (``Bogus``) or operation (``$lastn``)."""
    shown = repr(segment[:64])
    if segment.startswith("$"):
        return not_supported(f"operation {shown} is not supported")
    return not_supported(f"resource type {shown} is not supported")


def gone(message: str) -> FhirError:
    return FhirError(410, "deleted", message)


def method_not_allowed(message: str) -> FhirError:
    return FhirError(405, "not-supported", message)


def conflict(message: str) -> FhirError:
    return FhirError(409, "conflict", message)


def precondition_failed(message: str) -> FhirError:
    return FhirError(412, "conflict", message)


def unprocessable(message: str, *expression: str, code: str = "processing") -> FhirError:
    return FhirError(422, code, message, expression)


def unavailable(message: str) -> FhirError:
    return FhirError(503, "transient", message, headers={"Retry-After": "5"})


def insufficient_storage(message: str) -> FhirError:
    return FhirError(507, "no-store", message)


def store_failure(exc: Exception, message: str) -> FhirError:
    """The answer to a store outage: 507 when the store is full, else 503 Retry-After."""
    from fhir_server.storage.base import StoreFull  # storage imports nothing from here

    if isinstance(exc, StoreFull):
        return insufficient_storage("the data store is full; the write was not made")
    return unavailable(message)


def invalid_resource(issues: list[Issue]) -> FhirError:
    """A 400 carrying every problem found in one resource, the first one leading."""
    first, *rest = issues
    return FhirError(400, first.code, first.diagnostics, first.expression, list(rest))
