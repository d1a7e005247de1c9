//! Records the git revision for `pipefy_exporter_build_info` and `--version`.
use std::process::Command;

fn main() {
    let revision = std::env::var("PIPEFY_EXPORTER_REVISION")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(|| {
            let out = Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=PIPEFY_EXPORTER_REVISION={revision}");
    println!("cargo:rerun-if-env-changed=PIPEFY_EXPORTER_REVISION");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
}
