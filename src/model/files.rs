//! The files beside the inventory, opened and written so that nothing planted there (a symlink at a guessable
//! name, a FIFO, a device) is followed, written through, or left to block vxmesh.
//!
//! Whoever can create files in the inventory's directory (a shared repository, a world-writable checkout) must not
//! be able to make vxmesh overwrite a file elsewhere, hang, or turn the inventory into a link.

use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The two `open(2)` flags std has no name for; their values differ between kernels and architectures.
/// (`libc` would name them; it is not a dependency of vxmesh.)
mod flags {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub const O_NOFOLLOW: i32 = if cfg!(any(
        target_arch = "arm",
        target_arch = "aarch64",
        target_arch = "powerpc",
        target_arch = "powerpc64",
        target_arch = "m68k"
    )) {
        0o100000
    } else {
        0o400000
    };
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub const O_NONBLOCK: i32 = if cfg!(any(target_arch = "mips", target_arch = "mips64")) {
        0o200
    } else if cfg!(any(target_arch = "sparc", target_arch = "sparc64")) {
        0x4000
    } else {
        0o4000
    };
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub const O_NOFOLLOW: i32 = 0x100;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub const O_NONBLOCK: i32 = 0x4;
}

pub use flags::{O_NOFOLLOW, O_NONBLOCK};

/// Why a path is not the regular file vxmesh expects there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotRegular {
    Symlink,
    Directory,
    Fifo,
    Device,
    Socket,
    Other,
}

impl NotRegular {
    fn of(t: std::fs::FileType) -> Option<NotRegular> {
        Some(if t.is_file() {
            return None;
        } else if t.is_symlink() {
            NotRegular::Symlink
        } else if t.is_dir() {
            NotRegular::Directory
        } else if t.is_fifo() {
            NotRegular::Fifo
        } else if t.is_block_device() || t.is_char_device() {
            NotRegular::Device
        } else if t.is_socket() {
            NotRegular::Socket
        } else {
            NotRegular::Other
        })
    }

    /// `is a FIFO, not a regular file`, as messages put it after the path.
    pub fn describe(self) -> &'static str {
        match self {
            NotRegular::Symlink => "is a symbolic link, not a regular file",
            NotRegular::Directory => "is a directory, not a regular file",
            NotRegular::Fifo => "is a FIFO, not a regular file",
            NotRegular::Device => "is a device, not a regular file",
            NotRegular::Socket => "is a socket, not a regular file",
            NotRegular::Other => "is not a regular file",
        }
    }
}

/// What opening a file found.
#[derive(Debug)]
pub enum Opened {
    File(File),
    Missing,
    NotRegular(NotRegular),
}

/// Opens `path` read-only when it is a regular file. A FIFO or a device is refused before it is opened, and the
/// open itself never blocks (`O_NONBLOCK`: a FIFO swapped in after the check opens at once and is refused by what
/// the open file is). With `follow` false a symlink is refused too (`O_NOFOLLOW`), also one swapped in late.
pub fn open_regular(path: &Path, follow: bool) -> io::Result<Opened> {
    let seen = if follow { std::fs::metadata(path) } else { std::fs::symlink_metadata(path) };
    match seen {
        Ok(m) => {
            if let Some(kind) = NotRegular::of(m.file_type()) {
                return Ok(Opened::NotRegular(kind));
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Opened::Missing),
        Err(e) => return Err(e),
    }
    open_unchecked(path, follow)
}

/// The open itself, safe without the check before it (which only words the common cases early): what was swapped
/// in after the check is refused by the flags and by what the open file is.
fn open_unchecked(path: &Path, follow: bool) -> io::Result<Opened> {
    let nofollow = if follow { 0 } else { O_NOFOLLOW };
    let file = match OpenOptions::new().read(true).custom_flags(O_NONBLOCK | nofollow).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Opened::Missing),
        // ELOOP: a symlink appeared after the check.
        Err(_) if !follow && std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) => {
            return Ok(Opened::NotRegular(NotRegular::Symlink));
        }
        Err(e) => return Err(e),
    };
    match NotRegular::of(file.metadata()?.file_type()) {
        Some(kind) => Ok(Opened::NotRegular(kind)),
        None => Ok(Opened::File(file)),
    }
}

/// Opens (creating it when absent) a file that is only ever locked, never read: `O_NOFOLLOW` and `O_NONBLOCK`,
/// and refused unless it is a regular file, so a planted link creates nothing elsewhere and a FIFO hangs nothing.
pub fn open_lockable(path: &Path) -> io::Result<std::result::Result<File, NotRegular>> {
    if let Ok(m) = std::fs::symlink_metadata(path)
        && let Some(kind) = NotRegular::of(m.file_type())
    {
        return Ok(Err(kind));
    }
    create_lockable_unchecked(path)
}

/// The open of [`open_lockable`], safe without the check before it.
fn create_lockable_unchecked(path: &Path) -> io::Result<std::result::Result<File, NotRegular>> {
    let opened = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o666)
        .custom_flags(O_NOFOLLOW | O_NONBLOCK)
        .open(path);
    let file = match opened {
        Ok(f) => f,
        Err(e) => {
            return match std::fs::symlink_metadata(path).ok().and_then(|m| NotRegular::of(m.file_type())) {
                Some(kind) => Ok(Err(kind)),
                None => Err(e),
            };
        }
    };
    match NotRegular::of(file.metadata()?.file_type()) {
        Some(kind) => Ok(Err(kind)),
        None => Ok(Ok(file)),
    }
}

/// Which file is saved, for the words of its errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Inventory,
    Lock,
}

impl Kind {
    fn create_temporary(self) -> &'static str {
        match self {
            Kind::Inventory => "create a temporary file beside the inventory",
            Kind::Lock => "create a temporary file beside the lock file",
        }
    }
    fn write(self) -> &'static str {
        match self {
            Kind::Inventory => "write the inventory",
            Kind::Lock => "write the lock file",
        }
    }
    fn flush(self) -> &'static str {
        match self {
            Kind::Inventory => "flush the inventory",
            Kind::Lock => "flush the lock file",
        }
    }
    fn replace(self) -> &'static str {
        match self {
            Kind::Inventory => "replace the inventory",
            Kind::Lock => "replace the lock file",
        }
    }
    fn create(self) -> &'static str {
        match self {
            Kind::Inventory => "create the inventory",
            Kind::Lock => "create the lock file",
        }
    }
}

/// Whether a file already at the path may be replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replace {
    /// The new text replaces what is there (a symlink there is replaced, never written through).
    Yes,
    /// Only a new file: one that appeared meanwhile is kept and the save fails with `AlreadyExists`.
    No,
}

/// The one way vxmesh writes a file: the text goes to a new file with a random name in the same directory
/// (`O_CREAT|O_EXCL|O_NOFOLLOW`: nothing planted at any name is followed), is flushed to disk, then renamed over
/// `path` (or linked to it, for a new file), and the directory is flushed. A crash leaves the old file or the new
/// one, never half of one; the result is always a regular file. A file replaced keeps its permissions; a new one
/// gets 0666 less the umask, as a plain create would.
pub fn save(path: &Path, bytes: &[u8], kind: Kind, replace: Replace) -> Result<()> {
    let io = |action, source| Error::Io { action, path: path.to_path_buf(), source };
    let dir = directory_of(path);
    let kept = std::fs::symlink_metadata(path).ok().filter(|m| m.file_type().is_file()).map(|m| m.permissions());
    let (tmp, mut file) = create_temporary(dir, path, random).map_err(|e| io(kind.create_temporary(), e))?;
    let written = (|| {
        file.write_all(bytes).map_err(|e| io(kind.write(), e))?;
        if let Some(p) = kept {
            file.set_permissions(p).map_err(|e| io(kind.write(), e))?;
        }
        file.sync_all().map_err(|e| io(kind.flush(), e))?;
        drop(file);
        match replace {
            Replace::Yes => std::fs::rename(&tmp, path).map_err(|e| io(kind.replace(), e)),
            // A hard link never replaces what is there: the new file appears whole, or not at all.
            Replace::No => std::fs::hard_link(&tmp, path).map_err(|e| io(kind.create(), e)),
        }
    })();
    if written.is_err() || replace == Replace::No {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    // The rename is durable only once the directory is flushed; a failure here loses nothing a crash would not.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn directory_of(path: &Path) -> &Path {
    path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// A new file `.NAME.vxmesh-RANDOM` in `dir`, created exclusively; `random` gives each attempt's number.
fn create_temporary(dir: &Path, path: &Path, random: impl Fn(u32) -> u64) -> io::Result<(PathBuf, File)> {
    let name = path.file_name().map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let mut last = None;
    for attempt in 0..64u32 {
        let tmp = dir.join(format!(".{name}.vxmesh-{:016x}", random(attempt)));
        match OpenOptions::new().write(true).create_new(true).mode(0o666).custom_flags(O_NOFOLLOW).open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free temporary name")))
}

/// Unpredictable enough that a name cannot be planted ahead (`O_EXCL` is what makes it safe either way): std's
/// hasher keys come from the OS's random source.
fn random(attempt: u32) -> u64 {
    let mut h = std::hash::RandomState::new().build_hasher();
    h.write_u32(attempt);
    h.write_u32(std::process::id());
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    fn mkfifo(path: &Path) -> bool {
        std::process::Command::new("mkfifo").arg(path).status().is_ok_and(|s| s.success())
    }

    /// Runs `f` on another thread and fails, instead of hanging, when it blocks.
    fn within_seconds<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(f()));
        rx.recv_timeout(std::time::Duration::from_secs(10)).expect("the open returned instead of blocking")
    }

    #[test]
    fn the_open_itself_refuses_what_was_swapped_in_after_the_check() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let link = dir.path().join("link");
        symlink(&file, &link).unwrap();
        let kind = |p: PathBuf, follow| match open_unchecked(&p, follow) {
            Ok(Opened::File(_)) => "file".to_string(),
            Ok(Opened::Missing) => "missing".to_string(),
            Ok(Opened::NotRegular(k)) => k.describe().to_string(),
            Err(e) => format!("error {:?}", e.kind()),
        };
        assert_eq!(kind(link.clone(), false), "is a symbolic link, not a regular file", "O_NOFOLLOW");
        assert_eq!(kind(link.clone(), true), "file");
        assert_eq!(kind(dir.path().join("absent"), false), "missing");
        assert_eq!(kind(file.join("child"), false), "error NotADirectory");
        let looping = dir.path().join("loop");
        symlink(&looping, &looping).unwrap();
        assert!(kind(looping, true).starts_with("error"), "a link loop followed is an error, not a refused link");
        assert!(matches!(create_lockable_unchecked(&link).unwrap(), Err(NotRegular::Symlink)), "O_NOFOLLOW");
        let fifo = dir.path().join("fifo");
        if mkfifo(&fifo) {
            let f = fifo.clone();
            assert_eq!(within_seconds(move || kind(f, true)), "is a FIFO, not a regular file", "O_NONBLOCK");
            let f = fifo.clone();
            assert!(matches!(within_seconds(move || create_lockable_unchecked(&f).unwrap()), Err(NotRegular::Fifo)));
        }
    }

    #[test]
    fn a_path_that_cannot_be_looked_at_is_an_error_not_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        assert_eq!(open_regular(&file.join("child"), false).unwrap_err().kind(), io::ErrorKind::NotADirectory);
    }

    #[test]
    fn each_failure_names_what_was_being_done() {
        let dir = tempfile::tempdir().unwrap();
        let e = save(&dir.path().join("absent/v.yaml"), b"x", Kind::Inventory, Replace::Yes).unwrap_err();
        assert!(e.to_string().starts_with("cannot create a temporary file beside the inventory"), "{e}");
        let taken = dir.path().join("v.lock");
        std::fs::create_dir(&taken).unwrap();
        std::fs::write(taken.join("inside"), "x").unwrap();
        let e = save(&taken, b"x", Kind::Lock, Replace::Yes).unwrap_err();
        assert!(e.to_string().starts_with("cannot replace the lock file"), "{e}");
        assert_eq!(names(dir.path()), ["v.lock"], "the temporary file is removed after a failure");
    }

    #[test]
    fn the_temporary_file_lies_beside_the_target() {
        assert_eq!(directory_of(Path::new("/a/b/v.yaml")), Path::new("/a/b"));
        assert_eq!(directory_of(Path::new("v.yaml")), Path::new("."));
    }

    #[test]
    fn a_taken_temporary_name_is_skipped_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.yaml");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        symlink(&victim, dir.path().join(format!(".v.yaml.vxmesh-{:016x}", 0))).unwrap();
        let (tmp, _) = create_temporary(dir.path(), &path, u64::from).unwrap();
        assert_eq!(tmp, dir.path().join(format!(".v.yaml.vxmesh-{:016x}", 1)));
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        assert_ne!(random(0), random(0), "names are not predictable from one save to the next");
    }

    #[test]
    fn saving_replaces_atomically_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.yaml");
        save(&path, b"one\n", Kind::Inventory, Replace::Yes).unwrap();
        save(&path, b"two\n", Kind::Inventory, Replace::Yes).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two\n");
        assert_eq!(names(dir.path()), ["v.yaml"]);
    }

    #[test]
    fn a_replaced_file_keeps_its_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.yaml");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        save(&path, b"new", Kind::Inventory, Replace::Yes).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_symlink_at_the_path_is_replaced_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        let path = dir.path().join("v.yaml");
        symlink(&victim, &path).unwrap();
        save(&path, b"new\n", Kind::Inventory, Replace::Yes).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        assert!(std::fs::symlink_metadata(&path).unwrap().file_type().is_file(), "the inventory is a regular file");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
    }

    #[test]
    fn links_planted_at_every_fixed_name_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        let path = dir.path().join("v.yaml");
        // The names older versions wrote to first, and the prefix of the new ones.
        for planted in ["v.yaml.vxmesh-tmp", "v.vxmesh-tmp", ".v.yaml.vxmesh-", "v.lock.tmp1"] {
            symlink(&victim, dir.path().join(planted)).unwrap();
        }
        save(&path, b"new\n", Kind::Inventory, Replace::Yes).unwrap();
        save(&path, b"newer\n", Kind::Inventory, Replace::Yes).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        assert!(std::fs::symlink_metadata(&path).unwrap().file_type().is_file());
        assert_eq!(names(dir.path()).len(), 6, "the file, the victim, four links: {:?}", names(dir.path()));
    }

    #[test]
    fn a_temporary_file_is_created_exclusively_and_without_following_links() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        let link = dir.path().join("link");
        symlink(&victim, &link).unwrap();
        let e = OpenOptions::new().write(true).custom_flags(O_NOFOLLOW).open(&link).unwrap_err();
        assert_ne!(e.kind(), io::ErrorKind::NotFound, "O_NOFOLLOW has this platform's value: {e}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    }

    #[test]
    fn a_new_file_never_replaces_one_that_appeared() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.yaml");
        save(&path, b"first\n", Kind::Inventory, Replace::No).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "first\n");
        let e = save(&path, b"second\n", Kind::Inventory, Replace::No).unwrap_err().to_string();
        assert!(e.starts_with("cannot create the inventory"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "first\n");
        assert_eq!(names(dir.path()), ["v.yaml"], "no temporary file is left behind");

        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        let link = dir.path().join("w.yaml");
        symlink(&victim, &link).unwrap();
        assert!(save(&link, b"x\n", Kind::Inventory, Replace::No).is_err(), "a planted link is not a new file");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    }

    #[test]
    fn opening_refuses_what_is_not_a_regular_file_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let kind = |p: &Path, follow| match open_regular(p, follow).unwrap() {
            Opened::File(_) => "file",
            Opened::Missing => "missing",
            Opened::NotRegular(k) => k.describe(),
        };
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        assert_eq!(kind(&file, false), "file");
        assert_eq!(kind(&dir.path().join("absent"), false), "missing");
        assert_eq!(kind(dir.path(), false), "is a directory, not a regular file");
        assert_eq!(kind(Path::new("/dev/null"), true), "is a device, not a regular file");
        let link = dir.path().join("link");
        symlink(&file, &link).unwrap();
        assert_eq!(kind(&link, false), "is a symbolic link, not a regular file");
        assert_eq!(kind(&link, true), "file");
        let fifo = dir.path().join("fifo");
        if mkfifo(&fifo) {
            assert_eq!(kind(&fifo, true), "is a FIFO, not a regular file");
            assert!(matches!(open_lockable(&fifo).unwrap(), Err(NotRegular::Fifo)));
        }
    }

    #[test]
    fn a_lockable_file_is_created_but_never_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g");
        assert!(open_lockable(&path).unwrap().is_ok());
        assert!(std::fs::symlink_metadata(&path).unwrap().is_file());
        let target = dir.path().join("nologin");
        let link = dir.path().join("h");
        symlink(&target, &link).unwrap();
        assert!(matches!(open_lockable(&link).unwrap(), Err(NotRegular::Symlink)));
        assert!(!target.exists(), "a dangling link creates nothing where it points");
    }
}
