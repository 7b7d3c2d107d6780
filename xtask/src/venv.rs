//! Python virtualenvs under `target/`, made on first use and kept while what they were
//! installed from is unchanged.
//!
//! Each venv holds a stamp file with the text of what was installed into it (a requirements
//! file, or a list of pinned packages); the packages are installed again only when that text
//! changes, so a venv made once is reused by every later run. A failed install writes no stamp,
//! so the next run tries again.

use anyhow::{Context, bail};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The stamp file inside a venv.
const STAMP_FILE: &str = "errand-installed.stamp";

/// What a venv is installed from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Requirements<'a> {
    /// A requirements file, relative to the workspace root.
    File(&'a str),
    /// Pinned requirement specifiers (`name==version`), passed to pip as they are.
    Pins(&'a [&'a str]),
}

/// Makes the venv at `dir` (relative to the workspace root) when it is missing and installs
/// `requirements` into it when they changed since the last install; returns the venv's folder.
/// `label` prefixes what it prints.
pub(crate) fn ensure(
    root: &Path,
    dir: &str,
    requirements: Requirements<'_>,
    label: &str,
) -> anyhow::Result<PathBuf> {
    let venv = root.join(dir);
    let python = python_in(&venv);
    if !python.exists() {
        println!("{label}: creating {}", venv.display());
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .context("running `python3 -m venv` (is python3 >= 3.10 installed?)")?;
        if !status.success() {
            bail!("`python3 -m venv {}` failed ({status})", venv.display());
        }
    }
    let (wanted, source) = match requirements {
        Requirements::File(file) => {
            let path = root.join(file);
            let text =
                fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            (text, file.to_owned())
        }
        Requirements::Pins(pins) => (pins.join("\n") + "\n", pins.join(" ")),
    };
    let stamp = venv.join(STAMP_FILE);
    if fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(venv);
    }
    println!("{label}: installing {source} into {dir} (a few minutes the first time)");
    let mut pip = Command::new(&python);
    pip.args(["-m", "pip", "install", "--quiet"]);
    match requirements {
        Requirements::File(file) => pip.arg("-r").arg(root.join(file)),
        Requirements::Pins(pins) => pip.args(pins),
    };
    let status = pip.status().context("running pip")?;
    if !status.success() {
        bail!("`pip install {source}` into {dir} failed ({status})");
    }
    fs::write(&stamp, &wanted).with_context(|| format!("writing {}", stamp.display()))?;
    Ok(venv)
}

/// The Python interpreter of the venv at `venv`.
pub(crate) fn python_in(venv: &Path) -> PathBuf {
    venv.join("bin").join("python")
}
