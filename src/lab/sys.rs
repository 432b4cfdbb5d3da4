//! Running the machine's own tools for the lab: each command named in its error, with what it printed.

use std::ffi::{CString, c_char, c_void};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// Runs `prog args...`; a non-zero exit is an error naming the command and its stderr.
pub fn run(prog: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| lab_err(format!("cannot run `{prog}`: {e}")))?;
    if !out.status.success() {
        return Err(lab_err(format!(
            "`{prog} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command whose failure is expected when there is nothing to undo.
pub fn run_quiet(prog: &str, args: &[&str]) -> bool {
    Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn lab_err(message: impl Into<String>) -> Error {
    Error::Lab(message.into())
}

/// The lab makes namespaces, links and mounts: it needs Linux and root.
pub fn require_root() -> Result<()> {
    if !cfg!(target_os = "linux") {
        return Err(lab_err("the lab needs Linux (network namespaces, veth, overlayfs)"));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc_geteuid() } != 0 {
        return Err(lab_err("the lab needs root: it creates network namespaces, links and mounts (try sudo)"));
    }
    Ok(())
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
    #[link_name = "setxattr"]
    fn libc_setxattr(path: *const c_char, name: *const c_char, value: *const c_void, size: usize, flags: i32) -> i32;
}

/// Makes `dir`, an upper-layer directory of an overlay, opaque: the lower layer's directory of that name is not
/// seen through it (what `rm -r` then `mkdir` through the overlay would leave, without touching the lower one).
pub fn set_opaque(dir: &Path) -> Result<()> {
    let path = CString::new(dir.as_os_str().as_bytes()).map_err(|e| lab_err(e.to_string()))?;
    let name = CString::new("trusted.overlay.opaque").expect("no NUL");
    // SAFETY: both strings are NUL-terminated and outlive the call; the value is 1 readable byte.
    let rc = unsafe { libc_setxattr(path.as_ptr(), name.as_ptr(), b"y".as_ptr().cast(), 1, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(lab_err(format!("cannot mark {} opaque: {}", dir.display(), std::io::Error::last_os_error())))
    }
}

/// PIDs of every process whose network namespace is `ns` (by /run/netns/NAME).
pub fn pids_in_netns(ns: &str) -> Vec<u32> {
    run("ip", &["netns", "pids", ns])
        .map(|o| o.split_whitespace().filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_default()
}

/// Sends SIGKILL; a process already gone is fine.
pub fn kill(pid: u32) {
    run_quiet("kill", &["-9", &pid.to_string()]);
}

pub fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}
