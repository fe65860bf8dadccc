//! TODO: report.
