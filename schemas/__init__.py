"""The contract: JSON Schemas for every Infoway message, and validators that pick them by `code`.

from infoway_mock import schemas
schemas.validate_server_frame(frame)             # full path: readable ContractError
schemas.validate_server_frame(frame, fast=True)  # compiled validator; full report only on failure
"""

from __future__ import annotations

from .errors import ContractError, Violation
from .registry import CLIENT_SCHEMAS, SCHEMA_DIR, SERVER_SCHEMAS, load, names
from .semantic import CHECKS as SEMANTIC_CHECKS
from .validate import (
    instance_violations,
    is_valid_server_frame,
    schema_violations,
    server_frame_checker,
    validate_client_frame,
    validate_document,
    validate_server_frame,
)

__all__ = [
    "CLIENT_SCHEMAS",
    "SCHEMA_DIR",
    "SEMANTIC_CHECKS",
    "SERVER_SCHEMAS",
    "ContractError",
    "Violation",
    "instance_violations",
    "is_valid_server_frame",
    "load",
    "names",
    "schema_violations",
    "server_frame_checker",
    "validate_client_frame",
    "validate_document",
    "validate_server_frame",
]
