//! The dependency order of `DESIGN.md` (at the repository root): protocol <- client <- middleware; protocol <- runtime <-
//! middleware; protocol + runtime <- server; everything <- cli. A library crate may depend only on
//! the crates below it; tools (cli, xtask, examples, tests) may use any.
//!
//! Dev-dependencies are not checked: a crate's own tests may drive it through a layer above.

use anyhow::{Context, bail};
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Command;

/// Each workspace library and the workspace crates it may depend on.
const ALLOWED: &[(&str, &[&str])] = &[
    ("errand-protocol", &[]),
    ("errand-client", &["errand-protocol"]),
    ("errand-runtime", &["errand-protocol"]),
    (
        "errand-middleware",
        &["errand-protocol", "errand-client", "errand-runtime"],
    ),
    ("errand-server", &["errand-protocol", "errand-runtime"]),
    (
        "errand",
        &[
            "errand-protocol",
            "errand-client",
            "errand-runtime",
            "errand-middleware",
            "errand-server",
        ],
    ),
];

/// Packages that sit on top of everything and may depend on any workspace crate.
const TOOLS: &[&str] = &["errand-cli", "errand-examples", "errand-tests", "xtask"];

/// Workspace package name -> its normal and build dependencies on other workspace packages.
fn workspace_dependencies() -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .context("running cargo metadata")?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let metadata: Value = serde_json::from_slice(&output.stdout)?;
    let packages = metadata["packages"].as_array().context("no packages")?;
    let names: Vec<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    let mut graph = BTreeMap::new();
    for package in packages {
        let name = package["name"].as_str().context("package without a name")?;
        let dependencies = package["dependencies"]
            .as_array()
            .context("no dependencies array")?
            .iter()
            .filter(|dep| dep["kind"].as_str() != Some("dev"))
            .filter_map(|dep| dep["name"].as_str())
            .filter(|dep| names.contains(dep))
            .map(str::to_owned)
            .collect();
        graph.insert(name.to_owned(), dependencies);
    }
    Ok(graph)
}

#[test]
fn no_crate_depends_on_a_crate_above_it() -> anyhow::Result<()> {
    let graph = workspace_dependencies()?;
    let mut violations = Vec::new();
    for (package, dependencies) in &graph {
        if TOOLS.contains(&package.as_str()) {
            continue;
        }
        let Some((_, allowed)) = ALLOWED.iter().find(|(name, _)| name == package) else {
            violations.push(format!(
                "{package} has no place in the layers; add it to ALLOWED"
            ));
            continue;
        };
        for dependency in dependencies {
            if !allowed.contains(&dependency.as_str()) {
                violations.push(format!("{package} depends on {dependency}"));
            }
        }
    }
    assert!(violations.is_empty(), "layering broken: {violations:#?}");
    Ok(())
}

#[test]
fn every_layer_is_in_the_workspace() -> anyhow::Result<()> {
    let graph = workspace_dependencies()?;
    for (package, _) in ALLOWED {
        assert!(
            graph.contains_key(*package),
            "{package} is missing from the workspace"
        );
    }
    for tool in TOOLS {
        assert!(
            graph.contains_key(*tool),
            "{tool} is missing from the workspace"
        );
    }
    Ok(())
}
