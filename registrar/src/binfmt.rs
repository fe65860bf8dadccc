//! TODO: binfmt.
