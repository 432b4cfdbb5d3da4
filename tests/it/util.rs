//! Helpers shared by the integration tests: fixture paths, the built binary, parsed fixture clusters.

use std::path::{Path, PathBuf};
use std::process::Output;

use vxmesh::model::inventory::{self, Inventory};
use vxmesh::model::ipam;
use vxmesh::plan::{self, ClusterPlan};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn read_fixture(rel: &str) -> String {
    std::fs::read_to_string(fixtures().join(rel)).unwrap_or_else(|e| panic!("fixture {rel}: {e}"))
}

/// Parses inventory text and plans it without any lock (first run).
pub fn plan_of(yaml: &str) -> (Inventory, ClusterPlan) {
    let inv = inventory::parse(Path::new("test.yaml"), yaml).expect("valid inventory");
    let lock = ipam::assign(&inv, None).expect("allocates");
    let plan = plan::plan(&inv, &lock);
    (inv, plan)
}

/// A fresh temporary directory, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("vxmesh-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the vxmesh binary; on a failed expectation the caller prints this whole record.
pub struct Run {
    pub cmd: String,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "$ {}\nexit: {}\n--- stdout\n{}\n--- stderr\n{}", self.cmd, self.code, self.stdout, self.stderr)
    }
}

/// Runs the built binary in `dir`, under a timeout so a hung host fails the test instead of hanging CI.
pub fn vxmesh(dir: &Path, args: &[&str]) -> Run {
    vxmesh_env(dir, args, &[])
}

/// As [`vxmesh`], with these environment variables set. The caller's VXMESH_INVENTORY never leaks into a test.
pub fn vxmesh_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let out: Output = std::process::Command::new("timeout")
        .args(["--kill-after=5", "300", env!("CARGO_BIN_EXE_vxmesh")])
        .args(args)
        .current_dir(dir)
        // Run records land beside the test's inventory, and go with its directory.
        .env("XDG_STATE_HOME", dir.join(".state"))
        .env_remove("VXMESH_INVENTORY")
        .envs(env.iter().copied())
        .output()
        .expect("runs vxmesh");
    let shown_env: String = env.iter().map(|(k, v)| format!("{k}={v} ")).collect();
    Run {
        cmd: format!("{shown_env}vxmesh {}", args.join(" ")),
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
