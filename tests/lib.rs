//! Workspace-level tests that belong to no single crate: the layering rules of
//! [`DESIGN.md`](https://github.com/errand-rs/errand/blob/main/DESIGN.md) now,
//! end-to-end and interop suites as the layers arrive. Run them with `cargo test --workspace`.
