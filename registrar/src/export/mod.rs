//! TODO: export.
