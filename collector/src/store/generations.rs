//! The data dir's database directories: `db`, then `db.<n>` after `n` compactions, and
//! `db.current`, the file that names the one in use (`compact.rs` writes it; [`settle`] reads
//! it on open and removes what a compaction that crashed left). A leaf: it knows files and
//! names, not sled.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The file in the data dir that names the database directory in use.
pub const CURRENT_FILE: &str = "db.current";

/// Where `db.current` is written before it is renamed into place.
const CURRENT_TEMP: &str = "db.current.tmp";

/// The database directory of a data dir that never compacted (and has no `db.current`).
pub(super) const FIRST: &str = "db";

/// Why a compaction, or opening the data dir's database, failed.
#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    /// `db.current` names something that is not a database directory.
    #[error(
        "the data dir's {CURRENT_FILE} names `{0}`, which is not a watchpost database directory \
         (`db` or `db.<number>`); restore the data dir from a backup, or correct the file to \
         name the `db` directory the data dir holds"
    )]
    BadPointer(String),
    /// `db.current` names a directory that is not there.
    #[error(
        "the data dir's {CURRENT_FILE} names `{0}`, but there is no such directory with a \
         database in it; restore the data dir from a backup"
    )]
    Missing(String),
    /// A file of the data dir could not be read, written or removed.
    #[error("cannot {what} {path}: {source}; check the data dir's permissions and free space")]
    Io {
        /// What was being done (`write`, `rename`, `read`, ...).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// Another compaction is under way in this process.
    #[error("a compaction is already running; wait for it to finish")]
    Busy,
    /// Too little free space for the copy.
    #[error(
        "compacting needs about {needed} bytes free for the copy and the data dir's file system \
         has {available}; free some space first"
    )]
    NoRoom {
        /// Bytes the copy is expected to take, plus the reserve.
        needed: u64,
        /// Bytes free.
        available: u64,
    },
}

/// The database directory `db.current` names in `data_dir` (`db` without it).
pub(super) fn current(data_dir: &Path) -> Result<PathBuf, CompactError> {
    let file = data_dir.join(CURRENT_FILE);
    let name = match fs::read_to_string(&file) {
        Ok(text) => text.trim().to_owned(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(data_dir.join(FIRST));
        }
        Err(source) => {
            return Err(CompactError::Io {
                what: "read",
                path: file,
                source,
            });
        }
    };
    if generation(&name).is_none() {
        return Err(CompactError::BadPointer(name));
    }
    let dir = data_dir.join(&name);
    if !dir.join("db").is_file() {
        return Err(CompactError::Missing(name));
    }
    Ok(dir)
}

/// The generation of a database directory's name: `db` is 0, `db.<n>` is n; anything else is
/// not one.
fn generation(name: &str) -> Option<u64> {
    if name == FIRST {
        return Some(0);
    }
    let number = name.strip_prefix("db.")?;
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    number.parse().ok()
}

/// The database directory to open in `data_dir`, after removing what a compaction that
/// crashed left behind: every other database directory, and a half-written `db.current`.
pub(super) fn settle(data_dir: &Path) -> Result<PathBuf, CompactError> {
    let current = current(data_dir)?;
    let remove = |path: &Path, what: &'static str| -> Result<(), CompactError> {
        let removed = if path.is_dir() {
            fs::remove_dir_all(path)
        } else {
            fs::remove_file(path)
        };
        removed.map_err(|source| CompactError::Io {
            what,
            path: path.to_owned(),
            source,
        })
    };
    let entries = match fs::read_dir(data_dir) {
        Ok(entries) => entries,
        // A data dir not created yet has nothing to settle.
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(current),
        Err(source) => {
            return Err(CompactError::Io {
                what: "list",
                path: data_dir.to_owned(),
                source,
            });
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name == CURRENT_TEMP {
            remove(&path, "remove")?;
        } else if generation(name).is_some() && path.is_dir() && path != current {
            tracing::info!(
                leftover = %path.display(),
                current = %current.display(),
                "removing the database directory a compaction left behind"
            );
            remove(&path, "remove")?;
        }
    }
    Ok(current)
}

/// The directory the next compaction copies into.
pub(super) fn successor(current: &Path) -> PathBuf {
    let name = current
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(FIRST);
    let next = generation(name).unwrap_or(0) + 1;
    current.with_file_name(format!("db.{next}"))
}

/// Makes `db.current` name `dir`, atomically and durably: a crash leaves either the old name or
/// the new one.
pub(super) fn point_at(data_dir: &Path, dir: &Path) -> Result<(), CompactError> {
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or(FIRST);
    let temp = data_dir.join(CURRENT_TEMP);
    let io = |what: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| CompactError::Io { what, path, source }
    };
    let mut file = fs::File::create(&temp).map_err(io("create", &temp))?;
    file.write_all(format!("{name}\n").as_bytes())
        .map_err(io("write", &temp))?;
    file.sync_all().map_err(io("sync", &temp))?;
    drop(file);
    let target = data_dir.join(CURRENT_FILE);
    fs::rename(&temp, &target).map_err(io("rename", &target))?;
    fs::File::open(data_dir)
        .and_then(|dir| dir.sync_all())
        .map_err(io("sync", data_dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_directories_are_db_and_db_dot_a_number() {
        assert_eq!(generation("db"), Some(0));
        assert_eq!(generation("db.7"), Some(7));
        for not in ["db.", "db.x", "db.1a", "../db", "db.current", "dbx"] {
            assert_eq!(generation(not), None, "{not}");
        }
        assert_eq!(successor(Path::new("/d/db")), Path::new("/d/db.1"));
        assert_eq!(successor(Path::new("/d/db.9")), Path::new("/d/db.10"));
    }
}
