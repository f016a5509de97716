"""HL7 v2 -> FHIR R4 conversion, pure: bytes in, a transaction Bundle and an ACK out.

Layers (each usable alone)::

    _raw        bytes: MSH-18 charsets, BOM, CR/LF/CRLF, FHS/BHS batches
    _message    delimiters via python-hl7, lazy 1-based, escape-aware accessors
    _datatypes  DTM, CX, EI, XPN, XAD, XTN, CWE, XCN -> FHIR data types
    _patient, _encounter, _adt, _results, _orders   segment and message maps
    _bundle     conditional writes keyed on business identifiers, Provenance
    _convert    read_header / convert;  _ack  build_ack

Errors::

    ConversionError(ack_code AE|AR, error_code = HL7 table 0357, location = ERL)

See converters/README.md for the mapping decisions.
"""

from __future__ import annotations

from converters._ack import build_ack
from converters._convert import SUPPORTED_TYPES, convert, read_header
from converters._model import Conversion, ConversionError, MessageHeader
from converters._raw import codec_for, decode_message, is_batch, split_batch

__all__ = [
    "SUPPORTED_TYPES",
    "Conversion",
    "ConversionError",
    "MessageHeader",
    "build_ack",
    "codec_for",
    "convert",
    "decode_message",
    "is_batch",
    "read_header",
    "split_batch",
]
