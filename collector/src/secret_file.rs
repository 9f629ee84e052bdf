//! The collector's own 256-bit secrets, one file each in the data dir (`badge_secret` for badge
//! keys, `ack_secret` for acknowledge links): 64 hex characters, mode 0600, made at random on
//! first use and read on every start after, so keys derived from them stay stable across
//! restarts and are all revoked at once by deleting the file.

use std::io::Write as _;
use std::path::Path;

use rand::Rng;

/// Reads the secret in `path`, creating it on first use. `if_deleted` says what deleting a
/// damaged file costs (it is named in the error, so the person can decide).
pub(crate) fn load_or_create(path: &Path, if_deleted: &str) -> std::io::Result<[u8; 32]> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(text.trim()).ok_or_else(|| {
            std::io::Error::other(format!(
                "{} is not 64 hex characters; delete it to have a new one made ({if_deleted})",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret: [u8; 32] = rand::rng().random();
            write_private(path, &hex(&secret))?;
            Ok(secret)
        }
        Err(e) => Err(e),
    }
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut secret = [0u8; 32];
    for (i, byte) in secret.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(secret)
}

/// Writes a new file readable only by its owner, and syncs it.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    writeln!(file, "{contents}")?;
    file.sync_all()
}
