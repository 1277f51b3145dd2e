//! Contact CSV import and wash result file tests.
