//! Workspace-level tests that belong to no single crate: the layering rules of `DESIGN.md` now,
//! end-to-end and interop suites as the layers arrive. Run them with `cargo test --workspace`.
