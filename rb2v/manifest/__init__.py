"""The manifest contract (``rb2v.manifest/1``): its schema, the one row constructor, reading and
writing, the official HyperCUT ``metadata.json`` export, and the validator."""

import importlib

from .names import (
    BLUR_NAME,
    FRAMES_PER_SEQ,
    MANIFEST_NAME,
    METADATA_NAME,
    ORDER_KEY,
    ORDERS,
    SAMPLES_DIR,
    SCHEMA_TAG,
    SPLITS,
    manifest_file,
    manifest_path,
)

# the rest on first use: pyarrow and pandas take half a second, and a command's options are checked first
_LAZY = {
    **dict.fromkeys(
        (
            "COLUMNS",
            "FIELDS",
            "IDENTITY_COLOUR",
            "inside_dataset",
            "manifest_digests",
            "manifest_metadata",
            "manifest_schema",
            "metadata_json",
            "read_manifest",
            "read_manifest_table",
            "sample_paths",
            "sample_row",
            "to_table",
            "update_manifest",
            "write_manifest",
            "write_metadata_json",
        ),
        "schema",
    ),
    "check_manifest": "validate",
    "validate_manifest": "validate",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BLUR_NAME",
    "COLUMNS",
    "FIELDS",
    "FRAMES_PER_SEQ",
    "IDENTITY_COLOUR",
    "MANIFEST_NAME",
    "METADATA_NAME",
    "ORDER_KEY",
    "ORDERS",
    "SAMPLES_DIR",
    "SCHEMA_TAG",
    "SPLITS",
    "check_manifest",
    "inside_dataset",
    "manifest_digests",
    "manifest_file",
    "manifest_metadata",
    "manifest_schema",
    "metadata_json",
    "read_manifest",
    "manifest_path",
    "read_manifest_table",
    "sample_paths",
    "sample_row",
    "to_table",
    "update_manifest",
    "validate_manifest",
    "write_manifest",
    "write_metadata_json",
]
