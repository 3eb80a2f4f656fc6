//! `wacapi serve --data-dir DIR`: the local pipeline's queue, clicks and sent-ledger in one
//! SQLite database (`DIR/wacapi.db`), so a crash or `kill -9` loses nothing acknowledged and a
//! restart sends nothing twice.
//!
//! - A webhook is answered 200 only after its signals are committed (WAL journal,
//!   `synchronous = NORMAL`: a commit survives the process dying; an operating-system crash may
//!   lose the last commits, as it may with any WAL database).
//! - The ledger keeps DynamoDB's semantics (claims with leases, sent marks, TTLs), and clicks are
//!   kept newest-wins under hashed keys, with the attribution window as TTL.
//! - One process owns a directory (an exclusive lock on `DIR/wacapi.lock`). At start, messages
//!   left in flight by a dead process are handed out again and its pending claims are dropped:
//!   it can no longer send them, so waiting for their leases would only delay the retry. The one
//!   duplicate this allows is the documented window: a crash between Meta's 200 and the sent
//!   mark.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use wacapi_shared::conversion::clicks::{Click, StoreError};
use wacapi_shared::queue::{OutboundMessage, QueueError};
use wacapi_shared::report::{FactKey, Tally};
use wacapi_shared::store::ledger::{Claim, ClaimRequest, SentMark};
use wacapi_shared::store::{ClickWrite, DispatchStore};

use crate::backlog::{Backlog, DEDUP_WINDOW_US, Queued, check_sizes};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id TEXT NOT NULL,
    dedup_id TEXT NOT NULL,
    body TEXT NOT NULL,
    attributes TEXT NOT NULL,
    accepted_us INTEGER NOT NULL,
    visible_us INTEGER NOT NULL,
    in_flight INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS queue_group ON queue (group_id);
CREATE TABLE IF NOT EXISTS dedup (dedup_id TEXT PRIMARY KEY, expires_us INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS clicks (
    key TEXT PRIMARY KEY,
    ctwa_clid TEXT,
    ad_id TEXT,
    clicked_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    channel TEXT NOT NULL DEFAULT 'whatsapp',
    destination TEXT NOT NULL DEFAULT 'meta'
);
CREATE TABLE IF NOT EXISTS report (
    id TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    tally TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger (
    event_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    lease_until INTEGER,
    fbtrace_id TEXT,
    sent_at INTEGER,
    expires_at INTEGER NOT NULL
);
";

/// The schema's version (`PRAGMA user_version`). 1: clicks carry a channel, and a click id
/// only on WhatsApp. 2: clicks carry their platform (`meta`, `tiktok`).
const SCHEMA_VERSION: i64 = 2;

fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT COUNT(*) FROM pragma_table_info(?1) WHERE name = ?2",
        [table, column],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )
}

/// Brings a database written by an earlier version to [`SCHEMA_VERSION`].
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version >= SCHEMA_VERSION {
        return Ok(());
    }
    if !has_column(conn, "clicks", "channel")? {
        // Version 0 required a click id: rebuild the table (SQLite cannot drop NOT NULL).
        conn.execute_batch(
            "BEGIN;
             ALTER TABLE clicks RENAME TO clicks_v0;
             CREATE TABLE clicks (key TEXT PRIMARY KEY, ctwa_clid TEXT, ad_id TEXT,
                 clicked_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
                 channel TEXT NOT NULL DEFAULT 'whatsapp');
             INSERT INTO clicks (key, ctwa_clid, ad_id, clicked_at, expires_at)
                 SELECT key, ctwa_clid, ad_id, clicked_at, expires_at FROM clicks_v0;
             DROP TABLE clicks_v0;
             COMMIT;",
        )?;
    }
    if !has_column(conn, "clicks", "destination")? {
        conn.execute_batch(
            "ALTER TABLE clicks ADD COLUMN destination TEXT NOT NULL DEFAULT 'meta'",
        )?;
    }
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)
}

/// Expired rows are deleted at most this often (seconds).
const PURGE_INTERVAL_SECONDS: i64 = 60;

/// What a start found in the directory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Signals waiting (or left in flight) from an earlier run.
    pub pending: usize,
    /// Pending claims of an earlier run, dropped.
    pub released_claims: usize,
}

/// What a data directory may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Signals waiting or in flight, at most (see [`crate::backlog::check_bound`]).
    pub max_backlog: usize,
    /// Below this many free bytes on the directory's filesystem, new signals are refused
    /// (503): a full disk would fail every commit, and SQLite needs room to checkpoint.
    pub min_free_bytes: u64,
}

/// `serve --min-free-mb`'s default: room for SQLite to checkpoint its journal and for the
/// rest of the machine.
pub const DEFAULT_MIN_FREE_MB: u64 = 256;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_backlog: crate::backlog::DEFAULT_MAX_BACKLOG,
            min_free_bytes: DEFAULT_MIN_FREE_MB * 1024 * 1024,
        }
    }
}

/// The database of one data directory.
#[derive(Debug)]
pub struct Database {
    conn: Mutex<Connection>,
    pending: AtomicUsize,
    purged_at: Mutex<i64>,
    click_ttl_seconds: i64,
    dir: PathBuf,
    limits: Limits,
    wal: Mutex<Wal>,
    _lock: File,
}

/// Whether the write-ahead log may hold deleted rows, and when it was last emptied.
#[derive(Debug)]
struct Wal {
    dirty: bool,
    checkpointed: Instant,
}

/// Under steady load (the backlog never idle), the log is emptied at least this often, so a
/// dispatched signal's text stays on disk at most about this long.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

const LOCK_FILE: &str = "wacapi.lock";
const DB_FILE: &str = "wacapi.db";
const WAL_FILE: &str = "wacapi.db-wal";
const SHM_FILE: &str = "wacapi.db-shm";

/// Copies every page of the write-ahead log into the database (where `secure_delete` has
/// zeroed deleted rows) and truncates the log to nothing, so the old versions of those pages,
/// a dispatched signal's text among them, are no longer in any file.
fn checkpoint(conn: &Connection) -> rusqlite::Result<()> {
    let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
    if busy != 0 {
        // Only another connection could hold it; this process has one.
        tracing::warn!("the write-ahead log could not be emptied; retrying later");
    }
    Ok(())
}

/// Refuses a path that is a symbolic link: the data would live wherever the link points,
/// outside the directory the operator chose and secured.
fn refuse_symlink(path: &Path) -> Result<(), String> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(format!(
            "{} is a symbolic link; refusing to keep data through it (give the real path)",
            path.display()
        )),
        _ => Ok(()),
    }
}

/// Sets `path`'s mode (owner-only), if it exists.
fn owner_only(path: &Path, mode: u32) -> Result<(), String> {
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("{}: {e}", path.display()))
        }
        _ => Ok(()),
    }
}

/// The data directory, created (or fixed) readable by its owner only (0700); never a link.
fn private_dir(dir: &Path) -> Result<(), String> {
    refuse_symlink(dir)?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    refuse_symlink(dir)?;
    owner_only(dir, 0o700)
}

/// A file of the data directory, opened (or created) without following a link and made
/// readable by its owner only (0600).
fn private_file(path: &Path) -> Result<File, String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(file)
}

fn queue_err(e: rusqlite::Error) -> QueueError {
    QueueError::Transport(format!("local queue: {e}"))
}

fn store_err(e: rusqlite::Error) -> StoreError {
    StoreError(format!("local store: {e}"))
}

impl Database {
    /// Opens (or creates) the database in `dir`, taking the directory's lock.
    pub fn open(
        dir: &Path,
        click_ttl_seconds: i64,
        limits: Limits,
    ) -> Result<(Self, Recovered), String> {
        private_dir(dir)?;
        let path = dir.join(DB_FILE);
        for name in [LOCK_FILE, DB_FILE, WAL_FILE, SHM_FILE] {
            refuse_symlink(&dir.join(name))?;
        }
        let lock_path: PathBuf = dir.join(LOCK_FILE);
        let lock = private_file(&lock_path)?;
        lock.try_lock().map_err(|_| {
            format!(
                "{} is in use by another wacapi serve (lock {})",
                dir.display(),
                lock_path.display()
            )
        })?;
        // Created owner-only before SQLite opens it: SQLite gives its -wal and -shm files the
        // database file's mode.
        drop(private_file(&path)?);
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::default() | OpenFlags::SQLITE_OPEN_NOFOLLOW,
        )
        .map_err(|e| format!("{}: {e}", path.display()))?;
        let setup = || -> rusqlite::Result<Recovered> {
            // Deleted rows (a dispatched signal's text) are overwritten with zeros, and sorts
            // never spill to temporary files.
            conn.pragma_update(None, "secure_delete", "ON")?;
            conn.pragma_update(None, "temp_store", "MEMORY")?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn.execute_batch(SCHEMA)?;
            migrate(&conn)?;
            conn.execute("UPDATE queue SET in_flight = 0 WHERE in_flight = 1", [])?;
            let released_claims = conn.execute("DELETE FROM ledger WHERE state = 'pending'", [])?;
            let pending: i64 = conn.query_row("SELECT COUNT(*) FROM queue", [], |r| r.get(0))?;
            Ok(Recovered {
                pending: usize::try_from(pending).unwrap_or(0),
                released_claims,
            })
        };
        let recovered = setup()
            .and_then(|r| checkpoint(&conn).map(|()| r))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        // Files an earlier version (or another umask) left readable by others.
        for name in [WAL_FILE, SHM_FILE] {
            owner_only(&dir.join(name), 0o600)?;
        }
        Ok((
            Self {
                conn: Mutex::new(conn),
                pending: AtomicUsize::new(recovered.pending),
                purged_at: Mutex::new(0),
                click_ttl_seconds,
                dir: dir.to_path_buf(),
                limits,
                wal: Mutex::new(Wal {
                    dirty: false,
                    checkpointed: Instant::now(),
                }),
                _lock: lock,
            },
            recovered,
        ))
    }

    /// Refuses new signals while the directory's filesystem has less free space than the floor.
    /// A filesystem that cannot be asked is not a reason to refuse.
    fn check_disk(&self) -> Result<(), QueueError> {
        if self.limits.min_free_bytes == 0 {
            return Ok(());
        }
        match rustix::fs::statvfs(&self.dir) {
            Ok(fs) => {
                let free = fs.f_bavail.saturating_mul(fs.f_frsize);
                if free < self.limits.min_free_bytes {
                    Err(QueueError::Full(format!(
                        "the data directory's filesystem has {} MiB free, under the floor of {} MiB",
                        free / (1024 * 1024),
                        self.limits.min_free_bytes / (1024 * 1024)
                    )))
                } else {
                    Ok(())
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "free space of the data directory unknown");
                Ok(())
            }
        }
    }

    /// The report's aggregates (`GET /report` of `serve --data-dir`).
    pub fn report(&self) -> Result<Vec<(FactKey, Tally)>, String> {
        let conn = self.lock()?;
        let mut select = conn
            .prepare("SELECT key, tally FROM report")
            .map_err(|e| e.to_string())?;
        let rows = select
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for row in rows {
            let (key, tally) = row.map_err(|e| e.to_string())?;
            if let (Ok(key), Ok(tally)) = (serde_json::from_str(&key), serde_json::from_str(&tally))
            {
                out.push((key, tally));
            }
        }
        Ok(out)
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>, String> {
        self.conn
            .lock()
            .map_err(|_| "database lock poisoned".to_owned())
    }

    /// Deletes rows that can no longer matter, at most once a minute.
    fn purge(&self, conn: &Connection, now: i64) -> rusqlite::Result<()> {
        let Ok(mut at) = self.purged_at.lock() else {
            return Ok(());
        };
        if now - *at < PURGE_INTERVAL_SECONDS {
            return Ok(());
        }
        *at = now;
        conn.execute("DELETE FROM ledger WHERE expires_at <= ?1", [now])?;
        conn.execute("DELETE FROM clicks WHERE expires_at <= ?1", [now])?;
        conn.execute("DELETE FROM report WHERE expires_at <= ?1", [now])?;
        conn.execute(
            "DELETE FROM dedup WHERE expires_us <= ?1",
            [now * 1_000_000],
        )?;
        Ok(())
    }
}

impl Backlog for Database {
    fn push(&self, messages: Vec<OutboundMessage>, now_us: i64) -> Result<usize, QueueError> {
        check_sizes(&messages)?;
        self.check_disk()?;
        let mut conn = self.lock().map_err(QueueError::Transport)?;
        let tx = conn.transaction().map_err(queue_err)?;
        let added;
        {
            let mut seen = tx
                .prepare_cached("SELECT expires_us FROM dedup WHERE dedup_id = ?1")
                .map_err(queue_err)?;
            let mut remember = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO dedup (dedup_id, expires_us) VALUES (?1, ?2)",
                )
                .map_err(queue_err)?;
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO queue (group_id, dedup_id, body, attributes, accepted_us, visible_us)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                )
                .map_err(queue_err)?;
            // Copies within the batch count once, as they would one after the other.
            let mut batch = HashSet::with_capacity(messages.len());
            let mut fresh = Vec::with_capacity(messages.len());
            for m in &messages {
                let until: Option<i64> = seen
                    .query_row([&m.dedup_id], |r| r.get(0))
                    .optional()
                    .map_err(queue_err)?;
                if until.is_none_or(|u| u <= now_us) && batch.insert(m.dedup_id.as_str()) {
                    fresh.push(m);
                }
            }
            // Refused whole: the transaction is dropped, so no id of the batch is remembered.
            crate::backlog::check_bound(
                self.pending.load(Ordering::SeqCst),
                fresh.len(),
                self.limits.max_backlog,
            )?;
            added = fresh.len();
            for m in fresh {
                remember
                    .execute(params![m.dedup_id, now_us + DEDUP_WINDOW_US])
                    .map_err(queue_err)?;
                let attributes = serde_json::to_string(&m.attributes)
                    .map_err(|e| QueueError::Transport(e.to_string()))?;
                insert
                    .execute(params![m.group_id, m.dedup_id, m.body, attributes, now_us])
                    .map_err(queue_err)?;
            }
        }
        tx.commit().map_err(queue_err)?;
        self.pending.fetch_add(added, Ordering::SeqCst);
        Ok(added)
    }

    fn take(&self, max: usize, now_us: i64) -> Result<Vec<Queued>, QueueError> {
        let conn = self.lock().map_err(QueueError::Transport)?;
        let mut select = conn
            .prepare_cached(
                "SELECT id, group_id, dedup_id, body, attributes, accepted_us FROM queue
                 WHERE in_flight = 0 AND visible_us <= ?1
                   AND group_id NOT IN (SELECT group_id FROM queue
                                        WHERE in_flight = 1 OR visible_us > ?1)
                 ORDER BY id LIMIT ?2",
            )
            .map_err(queue_err)?;
        let rows = select
            .query_map(params![now_us, max as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            })
            .map_err(queue_err)?;
        let mut out = Vec::new();
        for row in rows {
            let (id, group_id, dedup_id, body, attributes, accepted_us) = row.map_err(queue_err)?;
            let mut message = OutboundMessage::new(body, group_id, dedup_id);
            message.attributes = serde_json::from_str(&attributes).unwrap_or_default();
            out.push(Queued {
                id: id as u64,
                message,
                accepted_us,
            });
        }
        let mut mark = conn
            .prepare_cached("UPDATE queue SET in_flight = 1 WHERE id = ?1")
            .map_err(queue_err)?;
        for q in &out {
            mark.execute([q.id as i64]).map_err(queue_err)?;
        }
        Ok(out)
    }

    fn finish(&self, ids: &[u64]) -> Result<(), QueueError> {
        let mut conn = self.lock().map_err(QueueError::Transport)?;
        let tx = conn.transaction().map_err(queue_err)?;
        let mut removed = 0;
        {
            let mut delete = tx
                .prepare_cached("DELETE FROM queue WHERE id = ?1")
                .map_err(queue_err)?;
            for id in ids {
                removed += delete.execute([*id as i64]).map_err(queue_err)?;
            }
        }
        tx.commit().map_err(queue_err)?;
        self.pending.fetch_sub(removed, Ordering::SeqCst);
        if let Ok(mut wal) = self.wal.lock() {
            wal.dirty = true;
            if wal.checkpointed.elapsed() >= CHECKPOINT_INTERVAL {
                checkpoint(&conn).map_err(queue_err)?;
                *wal = Wal {
                    dirty: false,
                    checkpointed: Instant::now(),
                };
            }
        }
        Ok(())
    }

    fn settle(&self) -> Result<(), QueueError> {
        // The connection first, then the log's state, as `finish` takes them.
        let conn = self.lock().map_err(QueueError::Transport)?;
        let Ok(mut wal) = self.wal.lock() else {
            return Ok(());
        };
        if wal.dirty {
            checkpoint(&conn).map_err(queue_err)?;
            *wal = Wal {
                dirty: false,
                checkpointed: Instant::now(),
            };
        }
        Ok(())
    }

    fn retry(&self, ids: &[u64], visible_us: i64) -> Result<(), QueueError> {
        let mut conn = self.lock().map_err(QueueError::Transport)?;
        let tx = conn.transaction().map_err(queue_err)?;
        {
            let mut update = tx
                .prepare_cached("UPDATE queue SET in_flight = 0, visible_us = ?2 WHERE id = ?1")
                .map_err(queue_err)?;
            for id in ids {
                update
                    .execute(params![*id as i64, visible_us])
                    .map_err(queue_err)?;
            }
        }
        tx.commit().map_err(queue_err)
    }

    fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }
}

impl DispatchStore for Database {
    async fn clicks(&self, keys: &[String]) -> Result<HashMap<String, Click>, StoreError> {
        let conn = self.lock().map_err(StoreError)?;
        let mut select = conn
            .prepare_cached(
                "SELECT ctwa_clid, ad_id, clicked_at, channel, destination FROM clicks WHERE key = ?1",
            )
            .map_err(store_err)?;
        let mut out = HashMap::new();
        for key in keys {
            let click = select
                .query_row([key], |r| {
                    Ok(Click {
                        ctwa_clid: r.get(0)?,
                        ad_id: r.get(1)?,
                        clicked_at: r.get(2)?,
                        // A channel this version does not know reads as WhatsApp's default
                        // rather than failing the whole batch.
                        channel: r.get::<_, String>(3)?.parse().unwrap_or_default(),
                        destination: r.get::<_, String>(4)?.parse().unwrap_or_default(),
                    })
                })
                .optional()
                .map_err(store_err)?;
            if let Some(click) = click {
                out.insert(key.clone(), click);
            }
        }
        Ok(out)
    }

    async fn commit(
        &self,
        clicks: &[ClickWrite],
        claims: &[ClaimRequest],
        now: i64,
    ) -> Result<Vec<Claim>, StoreError> {
        let mut conn = self.lock().map_err(StoreError)?;
        self.purge(&conn, now).map_err(store_err)?;
        let tx = conn.transaction().map_err(store_err)?;
        let mut answers = Vec::with_capacity(claims.len());
        {
            // Newest wins, as DynamoDB's `clicked_at <= :at` condition keeps it.
            let mut write = tx
                .prepare_cached(
                    "INSERT INTO clicks
                         (key, ctwa_clid, ad_id, clicked_at, expires_at, channel, destination)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (key) DO UPDATE SET ctwa_clid = excluded.ctwa_clid,
                         ad_id = excluded.ad_id, clicked_at = excluded.clicked_at,
                         expires_at = excluded.expires_at, channel = excluded.channel,
                         destination = excluded.destination
                     WHERE clicks.clicked_at <= excluded.clicked_at",
                )
                .map_err(store_err)?;
            for w in clicks {
                write
                    .execute(params![
                        w.key,
                        w.click.ctwa_clid,
                        w.click.ad_id,
                        w.click.clicked_at,
                        w.click.clicked_at.saturating_add(self.click_ttl_seconds),
                        w.click.channel.as_str(),
                        w.click.destination.as_str()
                    ])
                    .map_err(store_err)?;
            }
            let mut read = tx
                .prepare_cached("SELECT state, lease_until FROM ledger WHERE event_id = ?1")
                .map_err(store_err)?;
            let mut claim = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO ledger (event_id, state, lease_until, expires_at)
                     VALUES (?1, 'pending', ?2, ?3)",
                )
                .map_err(store_err)?;
            for c in claims {
                let existing: Option<(String, Option<i64>)> = read
                    .query_row([&c.event_id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
                    .map_err(store_err)?;
                let answer = match existing {
                    Some((state, _)) if state == "sent" => Claim::AlreadySent,
                    Some((_, Some(lease))) if lease >= now => Claim::Leased,
                    _ => {
                        claim
                            .execute(params![c.event_id, c.lease_until, c.expires_at])
                            .map_err(store_err)?;
                        Claim::Claimed
                    }
                };
                answers.push(answer);
            }
        }
        tx.commit().map_err(store_err)?;
        Ok(answers)
    }

    async fn mark_sent(
        &self,
        marks: &[SentMark],
        report: &[(FactKey, Tally)],
    ) -> Result<(), StoreError> {
        let mut conn = self.lock().map_err(StoreError)?;
        let tx = conn.transaction().map_err(store_err)?;
        {
            let mut mark = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO ledger (event_id, state, fbtrace_id, sent_at, expires_at)
                     VALUES (?1, 'sent', ?2, ?3, ?4)",
                )
                .map_err(store_err)?;
            for m in marks {
                mark.execute(params![m.event_id, m.fbtrace_id, m.sent_at, m.expires_at])
                    .map_err(store_err)?;
            }
            // The marks and the counts commit together, as DynamoDB's transaction does.
            let mut read = tx
                .prepare_cached("SELECT tally FROM report WHERE id = ?1")
                .map_err(store_err)?;
            let mut write = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO report (id, key, tally, expires_at) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(store_err)?;
            for (key, tally) in report {
                let id = key.id();
                let mut total: Tally = read
                    .query_row([&id], |r| r.get::<_, String>(0))
                    .optional()
                    .map_err(store_err)?
                    .and_then(|text| serde_json::from_str(&text).ok())
                    .unwrap_or_default();
                total.add(tally);
                let key_text = serde_json::to_string(key).map_err(|e| StoreError(e.to_string()))?;
                let tally_text =
                    serde_json::to_string(&total).map_err(|e| StoreError(e.to_string()))?;
                write
                    .execute(params![id, key_text, tally_text, key.expires_at()])
                    .map_err(store_err)?;
            }
        }
        tx.commit().map_err(store_err)
    }

    async fn release(&self, event_ids: &[String]) -> Result<(), StoreError> {
        let conn = self.lock().map_err(StoreError)?;
        let mut delete = conn
            .prepare_cached("DELETE FROM ledger WHERE event_id = ?1 AND state = 'pending'")
            .map_err(store_err)?;
        for id in event_ids {
            delete.execute([id]).map_err(store_err)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("wacapi-durable-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn the_durable_backlog_behaves_as_the_memory_one() {
        let d = dir("backlog");
        let (db, _) = Database::open(&d, 100, Limits::default()).unwrap();
        crate::backlog::tests::fifo_dedup_and_retry(&db);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn the_durable_backlog_keeps_the_same_bound_in_rows_and_across_a_restart() {
        let d = dir("bound");
        let limits = Limits {
            max_backlog: 3,
            min_free_bytes: 0,
        };
        {
            let (db, _) = Database::open(&d, 100, limits).unwrap();
            crate::backlog::tests::bounded_at_three(&db);
        }
        // The 5 rows left are counted again after a restart.
        let (db, recovered) = Database::open(&d, 100, limits).unwrap();
        assert_eq!(recovered.pending, 5);
        let m = OutboundMessage::new("x".into(), "g".into(), "new".into());
        assert!(matches!(db.push(vec![m], 2), Err(QueueError::Full(_))));
        let _ = std::fs::remove_dir_all(&d);
    }

    /// Whether any file of `dir` holds `needle`.
    fn on_disk(dir: &Path, needle: &str) -> bool {
        std::fs::read_dir(dir).unwrap().any(|e| {
            std::fs::read(e.unwrap().path())
                .is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
        })
    }

    #[test]
    fn a_finished_message_leaves_no_byte_beside_those_still_waiting() {
        let d = dir("at-rest");
        let (db, _) = Database::open(&d, 100, Limits::default()).unwrap();
        // Small and large (overflow pages) bodies, finished beside one that stays.
        let text = |tag: &str, n: usize| format!("{{\"text\": \"{}\"}}", tag.repeat(n));
        let m = |group: &str, id: &str, body: String| {
            OutboundMessage::new(body, group.into(), id.into())
        };
        db.push(
            vec![
                m("a", "1", text("sent-short-marker ", 1)),
                m("b", "2", text("sent-long-marker ", 2_000)),
                m("c", "3", text("waiting-marker ", 1)),
            ],
            1,
        )
        .unwrap();
        let taken = db.take(2, 1).unwrap();
        db.finish(&taken.iter().map(|q| q.id).collect::<Vec<_>>())
            .unwrap();
        db.settle().unwrap();
        assert!(!on_disk(&d, "sent-short-marker"));
        assert!(!on_disk(&d, "sent-long-marker"));
        assert!(on_disk(&d, "waiting-marker"), "what waits is kept");
        drop(db);
        assert!(!on_disk(&d, "sent-short-marker"), "closed");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn below_the_free_space_floor_nothing_is_accepted() {
        let d = dir("disk");
        let limits = Limits {
            max_backlog: 10,
            // More than any disk this runs on.
            min_free_bytes: u64::MAX,
        };
        let (db, _) = Database::open(&d, 100, limits).unwrap();
        let m = OutboundMessage::new("x".into(), "g".into(), "1".into());
        let refused = db.push(vec![m.clone()], 1);
        assert!(
            matches!(&refused, Err(QueueError::Full(why)) if why.contains("free")),
            "{refused:?}"
        );
        assert_eq!(db.pending(), 0);
        drop(db);
        let (db, _) = Database::open(&d, 100, Limits::default()).unwrap();
        assert_eq!(db.push(vec![m], 1).unwrap(), 1, "its id was not remembered");
        let _ = std::fs::remove_dir_all(&d);
    }

    /// The rules every store keeps (claims, leases, release, newest click wins, report counts
    /// with their marks), as the memory store and DynamoDB keep them.
    #[tokio::test]
    async fn the_sqlite_store_keeps_the_store_contract() {
        let d = dir("contract");
        let (db, _) = Database::open(&d, 86_400, Limits::default()).unwrap();
        wacapi_shared::store::contract::all(&db, async || db.report().unwrap()).await;
        drop(db);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[tokio::test]
    async fn a_restart_keeps_what_was_accepted_and_sent_and_frees_dead_claims() {
        let d = dir("restart");
        {
            let (db, recovered) = Database::open(&d, 100, Limits::default()).unwrap();
            assert_eq!(recovered, Recovered::default());
            assert!(
                Database::open(&d, 100, Limits::default()).is_err(),
                "one process per directory"
            );
            let m = |id: &str| OutboundMessage::new(id.into(), "g".into(), id.into());
            db.push(vec![m("1"), m("2")], 1_000).unwrap();
            let taken = db.take(1, 1_000).unwrap();
            assert_eq!(taken.len(), 1);
            let claim = |id: &str| ClaimRequest {
                event_id: id.into(),
                lease_until: 10_000,
                expires_at: 20_000,
            };
            let write = ClickWrite {
                key: "k".into(),
                click: Click {
                    ctwa_clid: Some("c".into()),
                    ad_id: None,
                    clicked_at: 500,
                    channel: Default::default(),
                    destination: Default::default(),
                },
            };
            let answers = db
                .commit(&[write], &[claim("e1"), claim("e2")], 1)
                .await
                .unwrap();
            assert_eq!(answers, [Claim::Claimed, Claim::Claimed]);
            let mark = SentMark {
                event_id: "e1".into(),
                fbtrace_id: None,
                sent_at: 1,
                expires_at: 20_000,
            };
            db.mark_sent(&[mark], &[]).await.unwrap();
            // The process dies here: "1" in flight, "e2" claimed but never sent.
        }
        let (db, recovered) = Database::open(&d, 100, Limits::default()).unwrap();
        assert_eq!(
            recovered,
            Recovered {
                pending: 2,
                released_claims: 1
            }
        );
        let taken = db.take(10, 2_000).unwrap();
        assert_eq!(taken.len(), 2, "the in-flight message is handed out again");
        let claim = |id: &str| ClaimRequest {
            event_id: id.into(),
            lease_until: 10_000,
            expires_at: 20_000,
        };
        assert_eq!(
            db.commit(&[], &[claim("e1"), claim("e2")], 2)
                .await
                .unwrap(),
            [Claim::AlreadySent, Claim::Claimed]
        );
        assert_eq!(
            db.clicks(&["k".into()]).await.unwrap()["k"]
                .ctwa_clid
                .as_deref(),
            Some("c")
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[tokio::test]
    async fn a_directory_of_the_previous_version_is_migrated_keeping_its_clicks() {
        let d = dir("migrate");
        std::fs::create_dir_all(&d).unwrap();
        {
            let conn = Connection::open(d.join("wacapi.db")).unwrap();
            conn.execute_batch(
                "CREATE TABLE clicks (key TEXT PRIMARY KEY, ctwa_clid TEXT NOT NULL, ad_id TEXT,
                     clicked_at INTEGER NOT NULL, expires_at INTEGER NOT NULL);
                 INSERT INTO clicks VALUES ('old', 'c0', 'ad', 10, 99999999999);",
            )
            .unwrap();
        }
        let (db, _) = Database::open(&d, 100, Limits::default()).unwrap();
        let old = &db.clicks(&["old".into()]).await.unwrap()["old"];
        assert_eq!(old.ctwa_clid.as_deref(), Some("c0"));
        assert_eq!(old.channel, wacapi_shared::channels::Channel::Whatsapp);
        let messenger = ClickWrite {
            key: "m".into(),
            click: Click {
                ctwa_clid: None,
                ad_id: Some("ad".into()),
                clicked_at: 500,
                channel: wacapi_shared::channels::Channel::Messenger,
                destination: wacapi_shared::model::Destination::TikTok,
            },
        };
        db.commit(std::slice::from_ref(&messenger), &[], 1)
            .await
            .unwrap();
        assert_eq!(
            db.clicks(&["m".into()]).await.unwrap()["m"],
            messenger.click
        );
        drop(db);
        let (db, _) = Database::open(&d, 100, Limits::default()).unwrap();
        assert_eq!(
            db.clicks(&["m".into()]).await.unwrap().len(),
            1,
            "opened twice"
        );
        let _ = std::fs::remove_dir_all(&d);
    }
}
