"""Results: the typed schema, results files (run metadata once per file, atomic, never
lost), importers of nccl-tests / OSU output, and nccl-tests-shaped tables."""
from .io import read_results, write_results
from .schema import MEASURED_COLUMNS, META_COLUMNS, MODEL_COLUMNS, SCHEMA_COLUMNS, typed

__all__ = ["read_results", "write_results", "typed", "MODEL_COLUMNS", "MEASURED_COLUMNS",
           "META_COLUMNS", "SCHEMA_COLUMNS"]
