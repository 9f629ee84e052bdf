//! A tmpfs of a given size, mounted for the life of the value: a real file system that fills
//! up, for the full-disk tests (`disk_full`, `disk_space`). Needs root or `CAP_SYS_ADMIN`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted for the life of the value.
pub struct Tmpfs {
    pub path: PathBuf,
}

impl Tmpfs {
    pub fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).expect("mount point");
        let output = Command::new("mount")
            // Private like a data dir `serve` creates: it refuses one others can reach.
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(path)
            .output()
            .expect("run mount");
        assert!(
            output.status.success(),
            "this test needs to mount a tmpfs (root or CAP_SYS_ADMIN) and could not: {}\n\
             run it as root, or in a container started with --cap-add SYS_ADMIN",
            String::from_utf8_lossy(&output.stderr).trim()
        );
        Tmpfs {
            path: path.to_owned(),
        }
    }

    /// Bytes free on it, as `df` says.
    pub fn available(&self) -> u64 {
        let output = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&self.path)
            .output()
            .expect("run df");
        let text = String::from_utf8_lossy(&output.stdout);
        text.lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .expect("df's answer")
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: the collector's files may still be closing.
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}
