//! `cargo xtask crdgen`: the CRD YAML users apply, generated from the API types.

use anyhow::{Context, Result, bail};

use crate::repo_root;

pub fn run(check: bool) -> Result<()> {
    let dir = repo_root().join("deploy/crds");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut stale = Vec::new();
    for crd in berth_api::crds() {
        let path = dir.join(berth_api::crd_file_name(&crd));
        let yaml = berth_api::crd_yaml(&crd)?;
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current == yaml {
            continue;
        }
        if check {
            stale.push(path.display().to_string());
        } else {
            std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
    }
    if !stale.is_empty() {
        bail!(
            "these CRDs differ from the API types; run `cargo xtask crdgen`:\n  {}",
            stale.join("\n  ")
        );
    }
    Ok(())
}
