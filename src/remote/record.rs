//! Run records: every script a changing command sends and what each host answered, one file per host under the
//! user's state directory (`$XDG_STATE_HOME/vxmesh/runs/<time>-<pid>/<node>.log`, else ~/.local/state/...).
//! Written for the admin who asks afterwards "what exactly did it run there?". Nothing secret passes through a
//! transport: private keys are made on the hosts and never printed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::converge::Output;
use crate::error::HostError;

/// Where this run's records go, created private to the user (0700); `None` when there is no home to put it in or
/// it cannot be made (a record is a help, never a reason to fail a run).
pub fn run_dir(command: &str) -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    let dir = base.join("vxmesh/runs").join(format!("{}-{command}-{}", utc(stamp), std::process::id()));
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).ok()?;
    Some(dir)
}

/// `2026-11-27T10-15-00Z` (no colons: the name is a path).
fn utc(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}-{:02}-{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Appends one script and what the host answered to `<dir>/<node>.log` (created 0600). One host runs its scripts
/// one after another, so its file is never written by two at once. A failed write loses the record, never the run.
/// Written through a buffer as it goes: a converged host's facts at 1,000 hosts are half a megabyte, and copying
/// each answer into one text first doubled what a run holds and copies.
pub fn append(dir: &Path, node: &str, script: &str, result: &Result<Output, HostError>, took: Duration) {
    use std::os::unix::fs::OpenOptionsExt;
    let file = dir.join(format!("{node}.log"));
    if let Ok(f) = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(file) {
        let mut w = std::io::BufWriter::with_capacity(64 * 1024, f);
        let _ = write_entry(&mut w, script, result, took).and_then(|()| w.flush());
    }
}

fn write_entry(
    w: &mut impl Write,
    script: &str,
    result: &Result<Output, HostError>,
    took: Duration,
) -> std::io::Result<()> {
    // Each text ends with a newline in the record, whether or not it had one.
    let text = |w: &mut dyn Write, t: &str| -> std::io::Result<()> {
        w.write_all(t.as_bytes())?;
        if !t.is_empty() && !t.ends_with('\n') { w.write_all(b"\n") } else { Ok(()) }
    };
    writeln!(w, "### sent ({} bytes)", script.len())?;
    w.write_all(script.as_bytes())?;
    if !script.ends_with('\n') {
        w.write_all(b"\n")?;
    }
    match result {
        Ok(o) => {
            write!(w, "### exit {} after {:.2} s\n### stdout\n", o.code, took.as_secs_f64())?;
            text(w, &o.stdout)?;
            w.write_all(b"### stderr\n")?;
            text(w, &o.stderr)
        }
        Err(e) => writeln!(w, "### not run: {e} (after {:.2} s)", took.as_secs_f64()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_and_answer_is_appended_privately() {
        let dir = std::env::temp_dir().join(format!("vxmesh-record-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ran =
            |script: &str| Ok(Output { stdout: format!("ran {} bytes", script.len()), stderr: String::new(), code: 0 });
        append(&dir, "node1", "echo one\n", &ran("echo one\n"), Duration::from_millis(1234));
        append(&dir, "node1", "echo two", &ran("echo two"), Duration::ZERO);
        let text = std::fs::read_to_string(dir.join("node1.log")).unwrap();
        assert_eq!(
            text,
            "### sent (9 bytes)\necho one\n### exit 0 after 1.23 s\n### stdout\nran 9 bytes\n### stderr\n### sent (8 bytes)\necho two\n### exit 0 after 0.00 s\n### stdout\nran 8 bytes\n### stderr\n"
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(dir.join("node1.log")).unwrap().permissions().mode() & 0o777, 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn run_directories_are_named_by_utc_time() {
        assert_eq!(utc(0), "1970-01-01T00-00-00Z");
        assert_eq!(utc(1_795_772_100), "2026-11-27T09-35-00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00-00-00Z");
    }
}
