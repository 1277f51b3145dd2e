//! Workflow, dispatcher, webhook and data-safety tests.
