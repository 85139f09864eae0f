//! Two indexes and the planner statistics that holochain 0.6.3's cell databases lack, so
//! that reads stay proportional to what they return instead of to the history a
//! conductor holds. Applied to the embedded conductors' databases ([`tune`]).
//!
//! What SQLite does with the stock schema (`EXPLAIN QUERY PLAN` on holochain_sqlite
//! 0.6.3's migrations; SQLite's default estimates, as holochain never runs `ANALYZE`):
//!
//! - `get_links` selects `DhtOp JOIN Action ... WHERE DhtOp.type = ? AND Action.base_hash
//!   = ? AND DhtOp.validation_status = ? ...` and SQLite walks
//!   `DhtOp_validation_status_idx`: every valid op the conductor holds, for every call.
//!   `Action.base_hash` has no index.
//! - `must_get_entry` (holochain_state `get_public_entry_from_db`) joins
//!   `Action ON Action.entry_hash = Entry.hash`; `Action.entry_hash` has no index, so it
//!   scans the whole `Action` table.
//!
//! [`TUNING`] adds an index on each of those columns and replaces the statistics of the
//! `Action` and `DhtOp` indexes with the shape of this hApp's data (one validation status
//! for nearly every op, a dozen op types, about three ops per action, a handful of links
//! per base). With them SQLite reads links through the base's own actions and entries
//! through their hash. Statistics only choose plans and indexes only add lookups, so no
//! query's result changes. SQLite reads the statistics when a connection opens (or runs
//! `ANALYZE sqlite_schema`, as [`TUNING`] does last): connections holochain already holds
//! keep their old plans until its pool closes them (after 30 s idle, holochain_sqlite
//! 0.6.3), and every connection opened after tuning plans with the new statistics.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use holochain_sqlite::db::DbKey;
use holochain_sqlite::rusqlite::Connection;

/// The statements [`tune`] runs on every cell database (idempotent).
pub const TUNING: &str = "
ANALYZE ChainLock;
DELETE FROM sqlite_stat1 WHERE tbl IN ('Action', 'DhtOp');
INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES
  ('Action', 'sqlite_autoindex_Action_1', '400000 1'),
  ('Action', 'Action_type_idx', '400000 40000'),
  ('Action', 'Action_author', '400000 20000'),
  ('Action', 'Action_seq_idx', '400000 1000'),
  ('Action', 'mycelix_fl_Action_base_hash', '400000 5'),
  ('Action', 'mycelix_fl_Action_entry_hash', '400000 1'),
  ('DhtOp', 'sqlite_autoindex_DhtOp_1', '1200000 1'),
  ('DhtOp', 'DhtOp_type_when_int_idx', '1200000 100000 2'),
  ('DhtOp', 'DhtOp_stage_type_status_idx', '1200000 1200000 100000 100000'),
  ('DhtOp', 'DhtOp_validation_status_idx', '1200000 1200000'),
  ('DhtOp', 'DhtOp_authored_timestamp_idx', '1200000 3'),
  ('DhtOp', 'DhtOp_storage_center_loc_idx', '1200000 10'),
  ('DhtOp', 'DhtOp_action_hash_idx', '1200000 3'),
  ('DhtOp', 'DhtOp_basis_hash_idx', '1200000 10');
CREATE INDEX IF NOT EXISTS mycelix_fl_Action_base_hash ON Action (base_hash);
CREATE INDEX IF NOT EXISTS mycelix_fl_Action_entry_hash ON Action (entry_hash);
ANALYZE sqlite_schema;
";

/// Set to `1` to leave the databases as holochain makes them (for comparisons).
pub const STOCK_ENV: &str = "MYCELIX_FL_STOCK_DB";

/// Whether [`STOCK_ENV`] asks for holochain's own schema.
pub fn stock() -> bool {
    std::env::var(STOCK_ENV).is_ok_and(|v| v.trim() == "1")
}

/// Runs [`TUNING`] on every cell database (authored, DHT, cache) under a conductor's data
/// root, unlocking each with `key`; returns how many it tuned.
pub async fn tune(data_root: &Path, key: &DbKey) -> Result<usize> {
    let unlock = {
        let mut pragma = key
            .unlocked
            .lock()
            .map_err(|_| anyhow::anyhow!("the database key's lock is poisoned"))?;
        let text = String::from_utf8_lossy(&*pragma.lock()).into_owned();
        text
    };
    let databases = cell_databases(&data_root.join("databases"));
    tokio::task::spawn_blocking(move || {
        for db in &databases {
            tune_one(db, &unlock).with_context(|| format!("tuning {}", db.display()))?;
        }
        Ok(databases.len())
    })
    .await?
}

fn tune_one(path: &Path, unlock: &str) -> Result<()> {
    let conn = Connection::open(path)?;
    conn.execute_batch(unlock)?;
    // The conductor writes to the same file; wait for its locks as it does.
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.execute_batch(&format!("BEGIN IMMEDIATE; {TUNING} COMMIT;"))?;
    Ok(())
}

/// The database files of the cell database folders under `databases` (holochain 0.6.3
/// names each after its hashes, with no extension, beside its `-wal` and `-shm` files).
fn cell_databases(databases: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = ["authored", "dht", "cache"]
        .iter()
        .filter_map(|kind| std::fs::read_dir(databases.join(kind)).ok())
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            !["-wal", "-shm", "-journal"]
                .iter()
                .any(|x| name.ends_with(x))
        })
        .collect();
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use holochain_sqlite::schema::SCHEMA_CELL;

    /// The plan SQLite picks for `sql` on `conn`, one step per line.
    fn plan(conn: &Connection, sql: &str) -> String {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let steps: Vec<String> = stmt
            .query_map([], |row| row.get::<_, String>(3))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        steps.join("\n")
    }

    // The shapes of holochain_state 0.6.3's link read (create side) and public entry read.
    const LINKS: &str =
        "SELECT Action.blob FROM DhtOp JOIN Action ON DhtOp.action_hash = Action.hash \
        WHERE DhtOp.type = 'RegisterAddLink' AND Action.base_hash = x'00' \
        AND DhtOp.validation_status = 0 AND DhtOp.when_integrated IS NOT NULL \
        AND Action.zome_index = 0 AND Action.link_type IN (1, 2)";
    const ENTRY: &str =
        "SELECT Entry.blob FROM Entry JOIN Action ON Action.entry_hash = Entry.hash \
        WHERE Entry.hash = x'00' AND Action.private_entry = 0";

    #[test]
    fn links_are_read_by_base_and_entries_by_hash_once_tuned() {
        let mut conn = Connection::open_in_memory().unwrap();
        SCHEMA_CELL.initialize(&mut conn, None).unwrap();
        // Stock: every valid op, and the whole Action table.
        assert!(
            plan(&conn, LINKS).contains("DhtOp_validation_status_idx"),
            "{}",
            plan(&conn, LINKS)
        );
        assert!(
            plan(&conn, ENTRY).contains("SCAN Action"),
            "{}",
            plan(&conn, ENTRY)
        );
        conn.execute_batch(TUNING).unwrap();
        let links = plan(&conn, LINKS);
        assert!(
            links.starts_with("SEARCH Action USING INDEX mycelix_fl_Action_base_hash"),
            "{links}"
        );
        assert!(links.contains("DhtOp_action_hash_idx"), "{links}");
        let entry = plan(&conn, ENTRY);
        assert!(
            entry.contains("mycelix_fl_Action_entry_hash") && !entry.contains("SCAN"),
            "{entry}"
        );
        // Idempotent: a restarted conductor's databases are tuned again.
        conn.execute_batch(TUNING).unwrap();
        assert_eq!(plan(&conn, LINKS), links);
    }

    #[test]
    fn only_cell_databases_are_found() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "dht/uhC0kA",
            "dht/uhC0kA-wal",
            "dht/uhC0kA-shm",
            "cache/uhC0kB",
            "authored/uhC0kA-uhCAkC",
            "conductor/conductor",
            "wasm/wasm",
        ] {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"").unwrap();
        }
        let names: Vec<String> = cell_databases(dir.path())
            .iter()
            .map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            ["authored/uhC0kA-uhCAkC", "cache/uhC0kB", "dht/uhC0kA"]
        );
    }
}
