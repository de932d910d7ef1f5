//! A data directory made once by `initdb` and copied for every new primary: `initdb` takes
//! 0.5 to 2 s on two busy cores, a copy of its 29 MB into a tmpfs about 0.1 s.
//!
//! The template lives in `/tmp/kamiyo-pg-template-<key>`, where the key changes with the
//! binaries, the initdb options, the settings and the server's OS user. It is kept between
//! runs (it is never written to after it is made). Concurrent tests that find none each
//! build one and publish it with an atomic rename; the losers throw theirs away.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use super::os::{self, Tools};
use super::{new_owned_dir, COMMAND_TIMEOUT, SETTINGS};

/// `root` is the superuser of the URLs; 1 MB WAL segments instead of 16 leave a third
/// less to copy for each primary.
const INITDB_ARGS: [&str; 8] = [
    "-U",
    "root",
    "--auth=trust",
    "--no-sync",
    "--no-locale",
    "-E",
    "UTF8",
    "--wal-segsize=1",
];

/// Fills `data` (which must not exist) with a fresh, never started cluster.
pub(super) async fn copy_into(tools: &Tools, cwd: &Path, data: &Path) {
    let template = ensure(tools).await;
    let mut copy = tokio::process::Command::from(tools.std_command(Path::new("cp"), cwd));
    copy.arg("-a").arg(template.join("data")).arg(data);
    os::run(copy, COMMAND_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("PgCluster: cannot copy the template cluster: {e}"));
}

async fn ensure(tools: &Tools) -> PathBuf {
    // On disk, not in the servers' tmpfs: it outlives the run and should not hold memory.
    let parent = std::env::temp_dir();
    let published = parent.join(format!("kamiyo-pg-template-{:016x}", key(tools)));
    if published.is_dir() {
        return published;
    }
    // Built next to where it is published, so that the rename is atomic.
    let building = Building(new_owned_dir(tools, &parent, "kamiyo-pg-template-building"));
    let data = building.0.join("data");
    let mut initdb = tools.command("initdb", &building.0);
    initdb.arg("-D").arg(&data).args(INITDB_ARGS);
    os::run(initdb, COMMAND_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("PgCluster: initdb failed: {e}"));
    append_settings(&data);
    if let Err(e) = std::fs::rename(&building.0, &published) {
        if !published.is_dir() {
            panic!(
                "PgCluster: cannot publish the template cluster as {}: {e}",
                published.display()
            );
        }
    }
    published
}

/// Removes a template that was not published (initdb failed, or another test won).
struct Building(PathBuf);

impl Drop for Building {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn key(tools: &Tools) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    tools.bin().hash(&mut hasher);
    std::fs::metadata(tools.bin().join("postgres"))
        .and_then(|meta| meta.modified())
        .ok()
        .hash(&mut hasher);
    INITDB_ARGS.hash(&mut hasher);
    SETTINGS.hash(&mut hasher);
    tools.owner().hash(&mut hasher);
    hasher.finish()
}

fn append_settings(data: &Path) {
    use std::io::Write;
    let path = data.join("postgresql.conf");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .and_then(|mut conf| conf.write_all(SETTINGS.as_bytes()))
        .unwrap_or_else(|e| panic!("PgCluster: cannot write {}: {e}", path.display()));
}
