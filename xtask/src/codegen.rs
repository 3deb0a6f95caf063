//! `cargo xtask codegen [--check]`: the generated files the repository commits. Today that is
//! `docs/openapi.json`, the OpenAPI document built from the contract's types
//! (`homeboy_api::openapi::document`). `--check` (run by `cargo xtask ci`) fails when the committed file
//! differs from what the code generates, so a contract change is always a visible diff.

use anyhow::{Context, bail};

use crate::workspace_root;

/// The committed OpenAPI document, relative to the workspace root.
pub const OPENAPI: &str = "docs/openapi.json";

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let check = match args {
        [] => false,
        [flag] if flag == "--check" => true,
        _ => bail!("usage: cargo xtask codegen [--check]"),
    };
    let path = workspace_root().join(OPENAPI);
    let generated = homeboy_api::openapi::document_text();
    if check {
        let committed =
            std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        if committed != generated {
            bail!(
                "{OPENAPI} is out of date with the contract's types: run `cargo xtask codegen` and commit the diff"
            );
        }
        println!("xtask codegen: {OPENAPI} is current");
    } else {
        std::fs::write(&path, generated).with_context(|| format!("write {}", path.display()))?;
        println!("xtask codegen: wrote {OPENAPI}");
    }
    Ok(())
}
