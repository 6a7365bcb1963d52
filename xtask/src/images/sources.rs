//! What the images hold, built or found on this machine: the pause binary (gcc), the release
//! build of Berth's binaries (cargo), the provisioner (Go, tools/local-path-provisioner) and
//! busybox (Debian's busybox-static, tools/busybox), and the shared libraries a binary needs (ldd).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{repo_root, run_build_script};

/// Where the pinned builds are cached: `BERTH_CACHE`, or `~/.cache/berth` (as tools/lib.sh).
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BERTH_CACHE") {
        return dir.into();
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/berth")
}

fn cargo_home() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_HOME") {
        return dir.into();
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cargo")
}

/// The first 16 hex digits of the SHA-256 of `text`, as tools/lib.sh `cache_key`.
fn short_hash(text: &[u8]) -> String {
    berth_images::sha256_digest(text)
        .trim_start_matches("sha256:")
        .chars()
        .take(16)
        .collect()
}

/// Builds `deploy/images/pause/pause.c` statically (gcc -static) into `work/pause`. A few hundred
/// milliseconds; gcc writes the same bytes for the same source and compiler.
pub fn pause(work: &Path, version: &str) -> Result<PathBuf> {
    let root = repo_root();
    let out = work.join("pause");
    let status = Command::new("gcc")
        .current_dir(&root)
        .args(["-static", "-Os", "-s", "-Wall", "-Wextra", "-Werror"])
        .arg(format!("-DVERSION=\"{version}\""))
        .arg(format!("-ffile-prefix-map={}=.", root.display()))
        .arg("-o")
        .arg(&out)
        .arg("deploy/images/pause/pause.c")
        .status()
        .context("running gcc (install gcc and libc6-dev)")?;
    if !status.success() {
        bail!("gcc could not build deploy/images/pause/pause.c ({status})");
    }
    Ok(out)
}

/// The release binaries of the images.
pub struct RustBinaries {
    pub model_server: PathBuf,
    pub model_fetch: PathBuf,
    pub operator: PathBuf,
    /// The console (crates/console), shipped in the operator's image.
    pub console: PathBuf,
}

/// Builds berth-model-server, berth-model-fetch, berth-operator and berth-console, copied into `work`, with cargo's `image` profile
/// (release, no symbols), in a target directory under the Berth cache keyed by the compiler, so a
/// fresh clone (CI) reuses the compiled dependencies and rebuilds only Berth's crates. The paths
/// of CARGO_HOME and of that directory are remapped, and cargo gives rustc the workspace's own
/// sources by relative path, so no build path ends up in the binaries, and the RUSTFLAGS are the
/// same for every clone (they are part of cargo's fingerprint).
pub fn rust_binaries(work: &Path) -> Result<RustBinaries> {
    let rustc = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("-vV")
        .output()
        .context("running rustc -vV")?;
    let cache = cache_dir();
    let name = format!("cargo-image-{}", short_hash(&rustc.stdout));
    let target = cache.join(&name);
    std::fs::create_dir_all(&target).with_context(|| format!("creating {}", target.display()))?;
    // Other compilers' target directories are stale: a new compiler rebuilds everything anyway.
    if let Ok(entries) = std::fs::read_dir(&cache) {
        for entry in entries.flatten() {
            let other = entry.file_name().to_string_lossy().into_owned();
            if other.starts_with("cargo-image-") && other.len() == name.len() && other != name {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    // Worktrees share the directory: hold it from the build until the binaries are read, so that
    // another worktree's build cannot replace them in between. Released when `lock` is dropped,
    // after the binaries are copied out.
    let lock = File::create(target.join(".xtask-images.lock"))
        .with_context(|| format!("creating the lock in {}", target.display()))?;
    lock.lock()
        .with_context(|| format!("locking {}", target.display()))?;
    forget_other_checkouts_crates(&target)?;
    let flags = [
        format!("--remap-path-prefix={}=/cargo", cargo_home().display()),
        format!("--remap-path-prefix={}=/target", target.display()),
    ]
    .join("\u{1f}");
    let status = crate::cargo()
        .current_dir(repo_root())
        .args(["build", "--locked", "--profile", "image"])
        .args(["--package", "berth-model-server"])
        .args(["--package", "berth-model-fetch"])
        .args(["--package", "berth-operator"])
        .args(["--package", "berth-console"])
        .env("CARGO_TARGET_DIR", &target)
        .env("CARGO_ENCODED_RUSTFLAGS", flags)
        .env_remove("RUSTFLAGS")
        .status()
        .context("running cargo build --profile image")?;
    if !status.success() {
        bail!("the release build of the image binaries failed ({status})");
    }
    std::fs::write(target.join(CHECKOUT_STAMP), checkout_id())
        .with_context(|| format!("writing {CHECKOUT_STAMP} in {}", target.display()))?;
    // Copy them into `work` while the lock is held.
    let copy = |binary: &str| -> Result<PathBuf> {
        let to = work.join(binary);
        std::fs::copy(target.join("image").join(binary), &to)
            .with_context(|| format!("copying {binary} out of {}", target.display()))?;
        Ok(to)
    };
    let binaries = RustBinaries {
        model_server: copy("berth-model-server")?,
        model_fetch: copy("berth-model-fetch")?,
        operator: copy("berth-operator")?,
        console: copy("berth-console")?,
    };
    drop(lock);
    Ok(binaries)
}

/// Runs a pinned tools/ build script (cached under BERTH_CACHE); its output directory.
pub fn tool(script: &str) -> Result<PathBuf> {
    run_build_script(script)
}

/// The shared libraries `binary` loads, as `ldd` resolves them on this machine (the dynamic
/// loader included, the vDSO left out): the paths to create in the image, whose bytes are the
/// files they resolve to. Empty for a static binary.
pub fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let output = Command::new("ldd")
        .arg(binary)
        .output()
        .context("running ldd")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let errors = String::from_utf8_lossy(&output.stderr);
    // glibc's ldd says "statically linked" (static-pie) or "not a dynamic executable" (stderr).
    if text.contains("statically linked") || errors.contains("not a dynamic executable") {
        return Ok(Vec::new());
    }
    if !output.status.success() {
        bail!("ldd {} failed: {}", binary.display(), errors.trim());
    }
    parse_ldd(&text).with_context(|| format!("the libraries of {}", binary.display()))
}

/// The library paths in `ldd` output: `name => /path (0x…)` or `/path (0x…)`.
fn parse_ldd(text: &str) -> Result<Vec<PathBuf>> {
    let mut libraries = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.contains("not found") {
            bail!("a library is missing on this machine: {line}");
        }
        let path = match line.split_once("=>") {
            Some((_, resolved)) => resolved.trim(),
            None => line,
        };
        let path = path.split(" (").next().unwrap_or(path).trim();
        if path.starts_with('/') {
            libraries.push(PathBuf::from(path));
        }
    }
    libraries.sort();
    libraries.dedup();
    Ok(libraries)
}

/// The file in the shared target directory that names the checkout whose sources it last built.
const CHECKOUT_STAMP: &str = ".xtask-images.checkout";

/// This checkout, as the stamp records it: its canonical path.
fn checkout_id() -> String {
    let root = repo_root();
    root.canonicalize().unwrap_or(root).display().to_string()
}

/// Cargo names the artifacts of a workspace crate without its path (the same in every clone) and
/// decides they are fresh by modification times. In a target directory shared by several
/// checkouts, a crate built from another checkout after this one's sources last changed would be
/// taken as fresh: the images would hold the other checkout's code (seen: a worktree's image
/// build failed on a field that only a sibling worktree's sources had). So when the last build
/// came from another checkout, Berth's own crates (`berth-*`, `berth_*`) lose their fingerprints
/// and are compiled again; the dependencies stay shared.
fn forget_other_checkouts_crates(target: &Path) -> Result<()> {
    let last = std::fs::read_to_string(target.join(CHECKOUT_STAMP)).unwrap_or_default();
    if last == checkout_id() {
        return Ok(());
    }
    let fingerprints = target.join("image").join(".fingerprint");
    let Ok(entries) = std::fs::read_dir(&fingerprints) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("berth-") || name.starts_with("berth_") {
            std::fs::remove_dir_all(entry.path())
                .with_context(|| format!("removing {}", entry.path().display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_the_library_paths_without_the_vdso() {
        let text = "\tlinux-vdso.so.1 (0x00007ffc3b5f2000)\n\
                    \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f0a1c000000)\n\
                    \tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f0a1bf00000)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0a1bd00000)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f0a1c100000)\n";
        let paths = parse_ldd(text).unwrap();
        assert_eq!(
            paths,
            [
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib/x86_64-linux-gnu/libm.so.6",
                "/lib64/ld-linux-x86-64.so.2",
            ]
            .map(PathBuf::from)
        );
        let missing = parse_ldd("\tlibfoo.so.1 => not found\n").unwrap_err();
        assert!(missing.to_string().contains("libfoo"), "{missing}");
    }

    #[test]
    fn the_machines_own_ldd_resolves_a_dynamic_binary() {
        // /bin/sh is dynamically linked on Debian; its libraries exist where ldd says.
        let libraries = shared_libraries(Path::new("/bin/sh")).unwrap();
        assert!(!libraries.is_empty());
        for library in libraries {
            assert!(library.exists(), "{}", library.display());
        }
    }
}
