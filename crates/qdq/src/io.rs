//! Writing output files so that a user's file is never lost: every file qdq writes
//! goes through [`write_with`] (or its shorthands [`write_atomic`] and
//! [`write_checked`]), and every command checks its outputs against its inputs first
//! ([`check_outputs`]).
//!
//! A write creates a temporary file exclusively (`O_CREAT | O_EXCL`, so a planted
//! symlink is never followed) under an unpredictable name in the target's folder,
//! writes and fsyncs it, lets the caller check the finished file, and only then renames
//! it over the target (atomic within one filesystem) and fsyncs the folder. On any
//! error the temporary file is removed and the target is untouched; on SIGINT, SIGTERM
//! or SIGHUP it is removed too once [`remove_temp_files_on_signals`] is installed.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Temporary files being written now. A signal handler takes no arguments, so the
/// files it must remove can only reach it through shared state: this list.
static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Removes its path from [`PENDING`] when the write is over, whatever its outcome.
struct Pending(PathBuf);

impl Pending {
    fn register(path: &Path) -> Self {
        lock_pending().push(path.to_path_buf());
        Self(path.to_path_buf())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let mut pending = lock_pending();
        if let Some(i) = pending.iter().position(|p| *p == self.0) {
            pending.swap_remove(i);
        }
    }
}

fn lock_pending() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    // A panic while the lock was held leaves a valid list: keep using it.
    PENDING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Writes `bytes` to `path` safely (see the module docs).
///
/// # Errors
/// `path` exists and is not a regular file, names no file, its folder is not writable,
/// the disk is full, or the rename fails. `path` is then untouched and no temporary
/// file remains.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_with(path, |f| f.write_all(bytes), |_| Ok(()))
}

/// [`write_atomic`], running `check` on the finished temporary file before it replaces
/// `path`: an error from `check` (e.g. the model does not run) leaves no file behind.
///
/// # Errors
/// As [`write_atomic`], and `check`'s error.
pub fn write_checked(
    path: &Path,
    bytes: &[u8],
    check: impl FnOnce(&Path) -> io::Result<()>,
) -> io::Result<()> {
    write_with(path, |f| f.write_all(bytes), check)
}

/// The one safe write: `write` fills a fresh temporary file in `path`'s folder, which
/// is fsynced, given to `check`, then renamed over `path`. The new file gets the
/// replaced file's permissions, or `0o666` less the umask for a new one.
///
/// # Errors
/// As [`write_atomic`], and the errors of `write` and `check`.
pub fn write_with(
    path: &Path,
    write: impl FnOnce(&mut File) -> io::Result<()>,
    check: impl FnOnce(&Path) -> io::Result<()>,
) -> io::Result<()> {
    write_files(vec![(path, Box::new(write))], |tmps| check(tmps[0]))
}

/// Fills one output file: given the open temporary file.
pub type Fill<'a> = Box<dyn FnOnce(&mut File) -> io::Result<()> + 'a>;

/// [`write_with`] for files that belong together (a model and its external data
/// file): every file is written to its own temporary file and fsynced, `check` gets
/// the temporary paths (in the order given) and sees all of them finished, and only
/// then are they renamed over their targets, in the order given: name the file that
/// refers to the others last, so a crash between two renames never leaves it
/// pointing at a missing or partial file. Any error before the renames removes every
/// temporary file and leaves every target untouched.
///
/// # Errors
/// As [`write_with`], for any of the files; a rename that fails after an earlier one
/// succeeded leaves the earlier target replaced (the error names the file).
pub fn write_files(
    files: Vec<(&Path, Fill<'_>)>,
    check: impl FnOnce(&[&Path]) -> io::Result<()>,
) -> io::Result<()> {
    let mut temps = Vec::with_capacity(files.len());
    let mut pending = Vec::with_capacity(files.len());
    for (path, write) in files {
        let existing = regular_or_absent(path)?;
        let dir = folder(path);
        // A short fixed prefix, so any name the filesystem allows for `path` works.
        let mut tmp = tempfile::Builder::new()
            .prefix(".qdq-")
            .suffix(".tmp")
            .rand_bytes(12)
            .tempfile_in(dir)?;
        pending.push(Pending::register(tmp.path()));
        write(tmp.as_file_mut())?;
        tmp.as_file_mut().flush()?;
        set_mode(tmp.as_file(), existing.as_ref())?;
        tmp.as_file().sync_all()?;
        temps.push((path, tmp));
    }
    let paths: Vec<&Path> = temps.iter().map(|(_, t)| t.path()).collect();
    check(&paths)?;
    for (path, tmp) in temps {
        tmp.persist(path).map_err(|e| e.error)?;
        // The rename is durable once the folder is; some filesystems cannot sync a
        // folder, and the file itself is already safe, so that failure is not fatal.
        if let Ok(d) = File::open(folder(path)) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// The folder `path` is in (`.` for a bare name).
fn folder(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// The metadata of `path` if it is a regular file (symlinks followed), `None` if it
/// does not exist; an error naming it if it is anything else.
fn regular_or_absent(path: &Path) -> io::Result<Option<std::fs::Metadata>> {
    if path.file_name().is_none() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{}` names no file", path.display()),
        ));
    }
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(Some(m)),
        Ok(m) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "`{}` is {}, not a regular file; name a file to write",
                path.display(),
                kind_of(&m)
            ),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn kind_of(m: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = m.file_type();
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if m.is_dir() {
        "a folder"
    } else {
        "not a regular file"
    }
}

#[cfg(unix)]
fn set_mode(file: &File, existing: Option<&std::fs::Metadata>) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = match existing {
        Some(m) => m.permissions().mode() & 0o7777,
        None => 0o666 & !umask(),
    };
    file.set_permissions(std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_: &File, _: Option<&std::fs::Metadata>) -> io::Result<()> {
    Ok(())
}

/// The process's umask, read without changing it (Linux's `/proc/self/status`);
/// `0o022` where that is not available.
#[cfg(unix)]
fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

/// On SIGINT, SIGTERM or SIGHUP: removes the temporary files of the writes in
/// progress, then ends the process as the signal would have. Call it once, early, in
/// a program that writes files (the `qdq` command line does).
///
/// # Errors
/// The handler cannot be installed.
#[cfg(unix)]
pub fn remove_temp_files_on_signals() -> io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new()
        .name("qdq-signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                for p in lock_pending().drain(..) {
                    let _ = std::fs::remove_file(p);
                }
                let _ = signal_hook::low_level::emulate_default_handler(signal);
                std::process::exit(128 + signal);
            }
        })?;
    Ok(())
}

/// No signals to handle off Unix.
#[cfg(not(unix))]
pub fn remove_temp_files_on_signals() -> io::Result<()> {
    Ok(())
}

/// Why a command's output may not be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The output exists and is a device, FIFO, socket or folder.
    #[error("{flag} {}: it is {kind}, not a regular file; name a file to write", path.display())]
    NotRegular {
        /// The flag that named it.
        flag: String,
        /// The path given.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// The output names no file (`/`, `..`).
    #[error("{flag} {}: names no file; give a file name", path.display())]
    NoFileName {
        /// The flag that named it.
        flag: String,
        /// The path given.
        path: PathBuf,
    },
    /// The output is one of the command's inputs (same path or same file).
    #[error(
        "{flag} {} is the same file as {input_flag} {}: writing it would destroy the input; choose another output",
        path.display(), input.display()
    )]
    SameAsInput {
        /// The output's flag.
        flag: String,
        /// The output.
        path: PathBuf,
        /// The input's flag.
        input_flag: String,
        /// The input.
        input: PathBuf,
    },
    /// The output is a symbolic link: qdq renames a finished file into place, which
    /// would replace the link itself rather than write through it (and cut what the
    /// link shared, for an external data file).
    #[error("{flag} {}: it is a symbolic link, which writing would replace with a plain file; name its target or another file", path.display())]
    Symlink {
        /// The flag (or the description) that names it.
        flag: String,
        /// The path.
        path: PathBuf,
    },
    /// The output's folder does not exist (or is not a folder): found before any work
    /// rather than after it.
    #[error("{flag} {}: the folder `{}` does not exist; create it first or choose another output", path.display(), folder.display())]
    NoFolder {
        /// The flag that named it.
        flag: String,
        /// The path given.
        path: PathBuf,
        /// Its folder.
        folder: PathBuf,
    },
    /// Two outputs are the same file.
    #[error(
        "{flag} {} and {other_flag} {} are the same file; give them different names",
        path.display(), other.display()
    )]
    SameOutputs {
        /// The first output's flag.
        flag: String,
        /// The first output.
        path: PathBuf,
        /// The second output's flag.
        other_flag: String,
        /// The second output.
        other: PathBuf,
    },
}

/// Checks, before any work, that every output (flag, path) can be written without
/// destroying anything: its folder exists, it is a regular file (not a link) or does
/// not exist yet, it is not the same file as any input (same path after resolving
/// symlinks and `..`, or the same device and inode, so hard links count), and no two
/// outputs are the same file.
///
/// # Errors
/// The first output at fault, naming both flags where two files clash.
pub fn check_outputs(
    inputs: &[(&str, &Path)],
    outputs: &[(&str, &Path)],
) -> Result<(), OutputError> {
    for (k, &(flag, path)) in outputs.iter().enumerate() {
        if path.file_name().is_none() {
            return Err(OutputError::NoFileName {
                flag: flag.into(),
                path: path.into(),
            });
        }
        if !folder(path).is_dir() {
            return Err(OutputError::NoFolder {
                flag: flag.into(),
                path: path.into(),
                folder: folder(path).into(),
            });
        }
        if let Ok(m) = std::fs::metadata(path)
            && !m.is_file()
        {
            return Err(OutputError::NotRegular {
                flag: flag.into(),
                path: path.into(),
                kind: kind_of(&m),
            });
        }
        check_not_symlink(flag, path)?;
        for &(input_flag, input) in inputs {
            if same_file(path, input) {
                return Err(OutputError::SameAsInput {
                    flag: flag.into(),
                    path: path.into(),
                    input_flag: input_flag.into(),
                    input: input.into(),
                });
            }
        }
        for &(other_flag, other) in &outputs[k + 1..] {
            if same_file(path, other) {
                return Err(OutputError::SameOutputs {
                    flag: flag.into(),
                    path: path.into(),
                    other_flag: other_flag.into(),
                    other: other.into(),
                });
            }
        }
    }
    Ok(())
}

/// Refuses an output that is a symbolic link (even to a regular file): for files
/// that another file refers to by name (external data), where a link may be shared.
///
/// # Errors
/// [`OutputError::Symlink`] naming `flag` and `path`.
pub fn check_not_symlink(flag: &str, path: &Path) -> Result<(), OutputError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(OutputError::Symlink {
            flag: flag.into(),
            path: path.into(),
        }),
        _ => Ok(()),
    }
}

/// Whether `a` and `b` are one file: the same inode when both exist, else the same
/// resolved path (folder resolved, then the file name).
fn same_file(a: &Path, b: &Path) -> bool {
    if let Ok(true) = same_file::is_same_file(a, b) {
        return true;
    }
    match (resolved(a), resolved(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// `path` with its folder made canonical (the file itself may not exist yet).
fn resolved(path: &Path) -> Option<PathBuf> {
    if let Ok(p) = std::fs::canonicalize(path) {
        return Some(p);
    }
    let name = path.file_name()?;
    Some(std::fs::canonicalize(folder(path)).ok()?.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Temp files of `dir` still registered for removal on signals. (Other tests
    /// write in parallel, so the global list as a whole need not be empty.)
    fn pending_in(dir: &Path) -> Vec<PathBuf> {
        lock_pending()
            .iter()
            .filter(|p| p.starts_with(dir))
            .cloned()
            .collect()
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writes_whole_file_and_leaves_nothing_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        write_atomic(&path, b"abc").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"abc");
        write_atomic(&path, b"defg").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"defg");
        // A folder in place of the file: refused before anything is created.
        let blocked = dir.path().join("blocked");
        std::fs::create_dir_all(blocked.join("x")).unwrap();
        let e = write_atomic(&blocked, b"abc").unwrap_err();
        assert!(
            e.to_string().contains("is a folder, not a regular file"),
            "{e}"
        );
        assert_eq!(names(dir.path()), ["blocked", "out.bin"]);
        assert_eq!(pending_in(dir.path()), Vec::<PathBuf>::new());
    }

    #[test]
    fn a_failed_check_leaves_the_old_file_and_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.onnx");
        std::fs::write(&path, b"old").unwrap();
        let mut seen = Vec::new();
        let e = write_checked(&path, b"new", |tmp| {
            seen = std::fs::read(tmp)?;
            Err(io::Error::other("does not run"))
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "does not run");
        assert_eq!(seen, b"new", "the check sees the finished file");
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(names(dir.path()), ["model.onnx"]);
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_symlink_is_not_followed_and_permissions_are_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        // Whatever names an attacker plants, the temp file is created exclusively
        // under a fresh random name: the victim is never opened.
        for i in 0..64 {
            std::os::unix::fs::symlink(&victim, dir.path().join(format!(".qdq-{i}.tmp"))).unwrap();
        }
        let out = dir.path().join("out.onnx");
        std::fs::write(&out, b"x").unwrap();
        std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&out, b"model").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert_eq!(std::fs::read(&out).unwrap(), b"model");
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        let fresh = dir.path().join("fresh.onnx");
        write_atomic(&fresh, b"m").unwrap();
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666 & !umask());
    }

    #[test]
    fn files_written_together_are_checked_together_and_renamed_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("m.onnx");
        let data = dir.path().join("m.onnx.data");
        std::fs::write(&model, b"old model").unwrap();
        std::fs::write(&data, b"old data").unwrap();
        let both = |m: &'static [u8], d: &'static [u8]| -> Vec<(&Path, Fill<'_>)> {
            vec![
                (data.as_path(), Box::new(move |f: &mut File| f.write_all(d))),
                (
                    model.as_path(),
                    Box::new(move |f: &mut File| f.write_all(m)),
                ),
            ]
        };
        // A failed check: both targets untouched, no temp file left.
        let e = write_files(both(b"new model", b"new data"), |tmps| {
            assert_eq!(std::fs::read(tmps[0])?, b"new data");
            assert_eq!(std::fs::read(tmps[1])?, b"new model");
            Err(io::Error::other("does not run"))
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "does not run");
        assert_eq!(std::fs::read(&model).unwrap(), b"old model");
        assert_eq!(std::fs::read(&data).unwrap(), b"old data");
        assert_eq!(names(dir.path()), ["m.onnx", "m.onnx.data"]);
        // A failed second write removes the first temp file too.
        let files: Vec<(&Path, Fill<'_>)> = vec![
            (data.as_path(), Box::new(|f: &mut File| f.write_all(b"d"))),
            (
                model.as_path(),
                Box::new(|_: &mut File| Err(io::Error::other("disk full"))),
            ),
        ];
        assert_eq!(
            write_files(files, |_| Ok(())).unwrap_err().to_string(),
            "disk full"
        );
        assert_eq!(names(dir.path()), ["m.onnx", "m.onnx.data"]);
        assert_eq!(pending_in(dir.path()), Vec::<PathBuf>::new());
        write_files(both(b"new model", b"new data"), |_| Ok(())).unwrap();
        assert_eq!(std::fs::read(&model).unwrap(), b"new model");
        assert_eq!(std::fs::read(&data).unwrap(), b"new data");
        assert_eq!(names(dir.path()), ["m.onnx", "m.onnx.data"]);
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_refused_where_asked() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("shared.data");
        std::fs::write(&target, b"x").unwrap();
        let link = dir.path().join("m.onnx.data");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = check_not_symlink("external data", &link).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "external data {}: it is a symbolic link, which writing would replace with a plain file; name its target or another file",
                link.display()
            )
        );
        check_not_symlink("external data", &target).unwrap();
        check_not_symlink("external data", &dir.path().join("absent")).unwrap();
        // Every output: a link to a regular file would be replaced, not written through.
        let e = check_outputs(&[], &[("-o", &link)]).unwrap_err();
        assert!(matches!(e, OutputError::Symlink { .. }), "{e}");
        assert!(std::fs::read(&target).unwrap() == b"x");
    }

    #[test]
    fn an_output_in_a_missing_folder_is_refused_before_any_work() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("no").join("such").join("m.onnx");
        let e = check_outputs(&[], &[("-o", &out)]).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "-o {}: the folder `{}` does not exist; create it first or choose another output",
                out.display(),
                dir.path().join("no").join("such").display()
            )
        );
        // A bare name is in the current folder, which exists.
        check_outputs(&[], &[("-o", Path::new("m.onnx"))]).unwrap();
        // A file where the folder should be.
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        let e = check_outputs(&[], &[("-o", &dir.path().join("f").join("m.onnx"))]).unwrap_err();
        assert!(matches!(e, OutputError::NoFolder { .. }), "{e}");
    }

    #[test]
    fn a_name_as_long_as_the_filesystem_allows_works() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m".repeat(250) + ".onnx");
        write_atomic(&path, b"abc").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"abc");
    }

    #[cfg(unix)]
    #[test]
    fn devices_and_fifos_are_refused() {
        let e = write_atomic(Path::new("/dev/null"), b"abc").unwrap_err();
        assert!(e.to_string().contains("is a device"), "{e}");
        let e = check_outputs(&[], &[("-o", Path::new("/dev/full"))]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "-o /dev/full: it is a device, not a regular file; name a file to write"
        );
    }

    #[test]
    fn outputs_that_are_inputs_or_each_other_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("model.onnx");
        std::fs::write(&model, b"m").unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let via_dots = sub.join("..").join("model.onnx");
        let e = check_outputs(&[("MODEL", &model)], &[("-o", &via_dots)]).unwrap_err();
        assert!(matches!(e, OutputError::SameAsInput { .. }), "{e}");
        assert!(e.to_string().starts_with("-o "), "{e}");
        assert!(e.to_string().contains("is the same file as MODEL"), "{e}");
        #[cfg(unix)]
        {
            let link = dir.path().join("hard.onnx");
            std::fs::hard_link(&model, &link).unwrap();
            let e = check_outputs(&[("--calib", &model)], &[("-o", &link)]).unwrap_err();
            assert!(e.to_string().contains("same file as --calib"), "{e}");
        }
        // Two outputs that do not exist yet, named differently.
        let a = dir.path().join("new.json");
        let b = sub.join("..").join("new.json");
        let e = check_outputs(&[], &[("-o", &a), ("--cache", &b)]).unwrap_err();
        assert!(
            e.to_string().contains("and --cache") && e.to_string().contains("same file"),
            "{e}"
        );
        let other = dir.path().join("other.onnx");
        check_outputs(&[("MODEL", &model)], &[("-o", &other), ("--cache", &a)]).unwrap();
        assert_eq!(std::fs::read(&model).unwrap(), b"m");
    }
}
