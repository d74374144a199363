//! The corpus schema and its migrations. `PRAGMA user_version` is the number of migrations
//! applied; `PRAGMA application_id` marks the file as a sera corpus.

use anyhow::{bail, Context, Result};
use rusqlite::Connection;

/// "SERA" in ASCII.
pub const APPLICATION_ID: i64 = 0x5345_5241;

/// Each entry moves the schema one version up. Never edit a released migration: add one.
/// Later issues add teacher exchanges, trajectories, patches, verdicts, runs and shards here.
const MIGRATIONS: &[&str] = &[
    // 1: repositories.
    // blobs keeps its rowid: SQLite stores large rows badly in a WITHOUT ROWID b-tree
    // (every insert moved overflow payloads around; 3% of an ingest).
    "CREATE TABLE blobs (
        id TEXT PRIMARY KEY,          -- sha256 of the raw bytes, hex
        raw_size INTEGER NOT NULL,
        data BLOB NOT NULL            -- zstd-compressed raw bytes
    );
    CREATE TABLE snapshots (
        id TEXT PRIMARY KEY,          -- sha256 of the canonical tree listing
        files INTEGER NOT NULL,
        raw_bytes INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE snapshot_entries (
        snapshot TEXT NOT NULL REFERENCES snapshots(id),
        path TEXT NOT NULL,
        mode INTEGER NOT NULL,        -- 0o100644, 0o100755 or 0o120000 (symlink; blob = target)
        blob TEXT NOT NULL REFERENCES blobs(id),
        PRIMARY KEY (snapshot, path)
    ) WITHOUT ROWID;
    CREATE TABLE sources (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        origin TEXT NOT NULL,         -- what was ingested: a path, path@rev, an archive, pip:N==V
        revision TEXT,                -- the git commit, when there is one
        snapshot TEXT NOT NULL REFERENCES snapshots(id),
        ingested_at TEXT NOT NULL,
        skipped TEXT NOT NULL         -- JSON: files left out, by reason
    );
    CREATE INDEX sources_by_name ON sources(name);
    -- The Python index is keyed by blob: content-addressed like everything else, so a file
    -- seen in any earlier snapshot is never parsed again. Path-dependent flags (in a tests
    -- path) are derived from the snapshot's paths when queried.
    CREATE TABLE python_files (
        blob TEXT PRIMARY KEY REFERENCES blobs(id),
        functions INTEGER NOT NULL,
        error TEXT                    -- why the file does not parse; NULL when it does
    ) WITHOUT ROWID;
    CREATE TABLE functions (
        blob TEXT NOT NULL REFERENCES blobs(id),
        qualname TEXT NOT NULL,
        start_line INTEGER NOT NULL,
        end_line INTEGER NOT NULL,
        body_sha256 TEXT NOT NULL,
        is_async INTEGER NOT NULL,
        is_method INTEGER NOT NULL,
        PRIMARY KEY (blob, start_line, qualname)
    ) WITHOUT ROWID;",
    // 2: teacher exchanges and rollouts. Requests and responses are blobs: a request's blob id
    // is its canonical JSON's sha256, so the key of an exchange is also where its text is.
    "CREATE TABLE exchanges (
        request TEXT NOT NULL REFERENCES blobs(id),   -- sha256 of the canonical request
        sample INTEGER NOT NULL,                      -- which of several identical requests
        response TEXT NOT NULL REFERENCES blobs(id),  -- the response body as received
        teacher TEXT NOT NULL,                        -- the endpoint that answered
        model TEXT NOT NULL,
        latency_ms INTEGER NOT NULL,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        recorded_at TEXT NOT NULL,
        PRIMARY KEY (request, sample)
    ) WITHOUT ROWID;
    CREATE TABLE rollouts (
        id TEXT PRIMARY KEY,            -- sha256 of the rollout's inputs
        snapshot TEXT NOT NULL REFERENCES snapshots(id),
        function TEXT NOT NULL,         -- PATH::QUALNAME
        teacher TEXT NOT NULL,
        model TEXT NOT NULL,
        sample INTEGER NOT NULL,
        outcome TEXT NOT NULL,          -- submitted, step-limit, token-budget, teacher-error, tools-error
        reason TEXT,                    -- what ended it, when not a submit
        steps INTEGER NOT NULL,
        trajectory TEXT NOT NULL REFERENCES blobs(id),  -- JSON
        patch TEXT NOT NULL REFERENCES blobs(id),
        created_at TEXT NOT NULL
    );
    CREATE INDEX rollouts_by_snapshot ON rollouts(snapshot);",
    // 3: pipeline stage outputs (keyed by the sha256 of their inputs) and the provenance of
    // every row written to a shard.
    "CREATE TABLE stage_outputs (
        key TEXT PRIMARY KEY,           -- sha256 of the stage's canonical inputs
        stage TEXT NOT NULL,            -- pr-synth, self-check, ...
        output TEXT NOT NULL REFERENCES blobs(id),  -- JSON
        created_at TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE shard_rows (
        id TEXT PRIMARY KEY,            -- the row id in the shard's metadata
        provenance TEXT NOT NULL REFERENCES blobs(id),  -- JSON: the chain of stages behind it
        created_at TEXT NOT NULL
    ) WITHOUT ROWID;",
    // 4: trajectories imported from other tools, each with where it came from.
    "CREATE TABLE imports (
        id TEXT PRIMARY KEY,            -- sha256 of (source file sha256, locator)
        format TEXT NOT NULL,           -- swe-agent, openai-jsonl, ...
        source TEXT NOT NULL,           -- the file as given
        source_sha256 TEXT NOT NULL,
        locator TEXT NOT NULL,          -- where in the file: 'whole file', 'line 12'
        instance_id TEXT,
        trajectory TEXT NOT NULL REFERENCES blobs(id),  -- JSON, the one trajectory model
        patch TEXT REFERENCES blobs(id),
        meta TEXT NOT NULL,             -- JSON: source fields kept as they are
        imported_at TEXT NOT NULL
    ) WITHOUT ROWID;",
    // 5: verifier verdicts, keyed by what they are a function of: the two patches, the plugin
    // and its config. A rescore with the same plugin and config is a lookup.
    "CREATE TABLE verdicts (
        pair TEXT NOT NULL,             -- sha256 of (candidate patch sha256, reference patch sha256)
        plugin TEXT NOT NULL,           -- the plugin component's sha256
        config TEXT NOT NULL,           -- sha256 of the canonical JSON config
        score REAL,                     -- none: the verifier declined to score
        matched INTEGER NOT NULL,
        total INTEGER NOT NULL,
        detail TEXT NOT NULL,
        failure TEXT,                   -- the plugin failed on this pair: how
        PRIMARY KEY (plugin, config, pair)
    ) WITHOUT ROWID;
    -- A SERA T2 row's P1 (its `target_patch` source field) as a blob, so that scoring reads a
    -- small compressed blob instead of the row's source fields.
    ALTER TABLE imports ADD COLUMN target_patch TEXT REFERENCES blobs(id);",
    // 6: commands the teacher ran, keyed by what they are a function of (the workspace tree
    // before, the command, the environment, the timeout), and the Python environments built
    // for snapshots. A command's output is not deterministic; its record is.
    "CREATE TABLE execs (
        key TEXT PRIMARY KEY,           -- sha256 of (tree_before, command, env, timeout_s)
        tree_before TEXT NOT NULL,      -- sha256 of the workspace's snapshot listing
        command TEXT NOT NULL,
        env TEXT NOT NULL,              -- the environment's id, or bare:INTERPRETER
        timeout_s INTEGER NOT NULL,
        exit_code INTEGER,
        signal INTEGER,
        timed_out INTEGER NOT NULL,
        truncated INTEGER NOT NULL,
        dropped_bytes INTEGER NOT NULL,
        output TEXT NOT NULL REFERENCES blobs(id),
        duration_ms INTEGER NOT NULL,
        changes TEXT NOT NULL,          -- JSON [[path, mode, blob or null (deleted)], ...]
        tree_after TEXT NOT NULL,
        recorded_at TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE envs (
        id TEXT PRIMARY KEY,            -- sha256 of (snapshot, interpreter, resolved requirements)
        snapshot TEXT NOT NULL REFERENCES snapshots(id),
        interpreter TEXT NOT NULL,      -- e.g. cpython-3.11.7 at /usr/bin/python3
        requirements TEXT NOT NULL,     -- the resolved requirements, one per line
        path TEXT NOT NULL,             -- where the environment lives
        status TEXT NOT NULL,           -- ok or failed
        report TEXT NOT NULL,           -- what the build did, or why it failed
        built_at TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX envs_by_snapshot ON envs(snapshot);",
    // 7: how far each item of a pipeline got, and when (unix ms), by the worker that did it:
    // what `sera-host status` reads. Not content: a merge keeps the first record of an item.
    "CREATE TABLE item_progress (
        pipeline TEXT NOT NULL,         -- sha256 of the resolved pipeline (the manifest's)
        item TEXT NOT NULL,             -- the item's key
        worker TEXT NOT NULL,           -- I/N, or 0/1 for a run on one machine
        selected_at INTEGER NOT NULL,
        rollout1_at INTEGER,
        pr_at INTEGER,
        rollout2_at INTEGER,
        verified_at INTEGER,
        done_at INTEGER,
        stopped TEXT,                   -- why the item ended early, when it did
        PRIMARY KEY (pipeline, item)
    ) WITHOUT ROWID;",
    // 8: an import's `target_patch` source field is kept once, as the blob its column names,
    // not also inside `meta` (where it was most of the row: ~2.5 KB of a SERA T2 row, so that
    // listing 200,000 imports walked 500 MB of overflow pages). Readers of `meta` put it back.
    // `json_remove` keeps the rest of the text as it was (the same bytes an import now writes);
    // a row whose fields are not valid JSON is left as it is rather than failing the migration.
    "UPDATE imports SET meta = json_remove(meta, '$.target_patch')
     WHERE target_patch IS NOT NULL
       AND CASE WHEN json_valid(meta) THEN json_type(meta, '$.target_patch') END = 'text';",
];

pub const VERSION: i64 = MIGRATIONS.len() as i64;

/// Creates the schema in an empty database or brings an older corpus up to date. Refuses a
/// database that belongs to something else, or one written by a newer sera-host.
pub fn migrate(conn: &mut Connection, shown: &str) -> Result<()> {
    let app: i64 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .with_context(|| format!("{shown}: not a sera corpus (not an SQLite database)"))?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))?;
    if app != APPLICATION_ID && (tables > 0 || version != 0) {
        bail!("{shown}: not a sera corpus (an SQLite database of something else: application_id {app:#x}, {tables} schema objects)");
    }
    if version > VERSION {
        bail!("{shown}: corpus schema version {version} is newer than this sera-host understands ({VERSION}); upgrade sera-host");
    }
    if version == VERSION {
        // Up to date: opening must not write, so readers never wait for an ingest's lock.
        return Ok(());
    }
    let tx = conn.transaction()?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(sql)
            .with_context(|| format!("{shown}: migration to schema version {}", i + 1))?;
    }
    tx.pragma_update(None, "application_id", APPLICATION_ID)?;
    tx.pragma_update(None, "user_version", VERSION)?;
    tx.commit()?;
    Ok(())
}
