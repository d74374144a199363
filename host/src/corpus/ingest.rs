//! Ingesting a source (a directory, a git revision, an archive, a PyPI sdist) into the corpus,
//! one file at a time: a repository is never held in memory whole.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use rusqlite::params;
use serde::Serialize;

use super::store::Corpus;
use super::tree::{
    check_path, file_mode, is_binary, snapshot_id, Entry, MODE_EXECUTABLE, MODE_FILE, MODE_SYMLINK,
};

/// Commit the blobs of an ingest in batches of about this many raw bytes.
const BATCH_BYTES: u64 = 32 << 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Dir(PathBuf),
    Git { repo: PathBuf, rev: String },
    Archive(PathBuf),
    Pip { name: String, version: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ArchiveKind {
    TarGz,
    TarBz2,
    Zip,
}

fn archive_kind(path: &Path) -> Option<ArchiveKind> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        Some(ArchiveKind::TarGz)
    } else if name.ends_with(".tar.bz2") || name.ends_with(".tbz2") {
        Some(ArchiveKind::TarBz2)
    } else if name.ends_with(".zip") {
        Some(ArchiveKind::Zip)
    } else {
        None
    }
}

impl Source {
    /// `DIR`, `REPO@REV`, `FILE.tar.gz|.tar.bz2|.zip` or `pip:NAME==VERSION`.
    pub fn parse(spec: &str) -> Result<Self> {
        if let Some(req) = spec.strip_prefix("pip:") {
            let Some((name, version)) = req.split_once("==") else {
                bail!("{spec}: expected pip:NAME==VERSION (a pinned version)");
            };
            if name.is_empty() || version.is_empty() {
                bail!("{spec}: expected pip:NAME==VERSION (a pinned version)");
            }
            return Ok(Self::Pip {
                name: name.to_string(),
                version: version.to_string(),
            });
        }
        let path = Path::new(spec);
        if path.is_dir() {
            return Ok(Self::Dir(path.to_path_buf()));
        }
        if path.is_file() {
            return match archive_kind(path) {
                Some(_) => Ok(Self::Archive(path.to_path_buf())),
                None => bail!("{spec}: not a directory or an archive (.tar.gz, .tar.bz2, .zip)"),
            };
        }
        if let Some((repo, rev)) = spec.rsplit_once('@') {
            if Path::new(repo).is_dir() && !rev.is_empty() {
                return Ok(Self::Git {
                    repo: PathBuf::from(repo),
                    rev: rev.to_string(),
                });
            }
        }
        bail!("{spec}: no such file or directory (expected DIR, REPO@REV, an archive or pip:NAME==VERSION)")
    }

    fn default_name(&self) -> String {
        let stem = |p: &Path| {
            std::fs::canonicalize(p)
                .unwrap_or_else(|_| p.to_path_buf())
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| p.display().to_string())
        };
        match self {
            Self::Dir(p) | Self::Git { repo: p, .. } => stem(p),
            Self::Archive(p) => {
                let name = stem(p);
                for ext in [".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".zip"] {
                    if name.to_ascii_lowercase().ends_with(ext) {
                        return name[..name.len() - ext.len()].to_string();
                    }
                }
                name
            }
            Self::Pip { name, .. } => name.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct IngestOptions {
    pub name: Option<String>,
    /// Files larger than this are skipped (and counted).
    pub max_file_size: u64,
    /// Where `pip:` sources are downloaded.
    pub pip_cache: PathBuf,
    /// Gitignore-style globs of paths to leave out of a directory ingest.
    pub exclude: Vec<String>,
}

impl Default for IngestOptions {
    fn default() -> Self {
        let cache = crate::cache_dir::cache_dir().unwrap_or_else(std::env::temp_dir);
        Self {
            name: None,
            max_file_size: 2 << 20,
            pip_cache: cache.join("pip"),
            exclude: Vec::new(),
        }
    }
}

/// Files left out of a snapshot, by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Skipped {
    pub too_large: u64,
    pub binary: u64,
    pub non_utf8_path: u64,
    pub unsafe_path: u64,
    /// Devices, sockets, git submodules, hard links in archives.
    pub special: u64,
    pub unreadable: u64,
    /// Up to ten examples of paths that are not UTF-8 or could not be read, for the report.
    pub examples: Vec<String>,
}

impl Skipped {
    fn example(&mut self, what: String) {
        if self.examples.len() < 10 {
            self.examples.push(what);
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct IngestReport {
    pub snapshot: String,
    pub name: String,
    pub origin: String,
    pub revision: Option<String>,
    pub files: usize,
    pub raw_bytes: u64,
    pub new_blobs: u64,
    pub new_stored_bytes: u64,
    pub python_files_parsed: u64,
    /// The snapshot was in the corpus already (the same tree was ingested before).
    pub existing_snapshot: bool,
    pub skipped: Skipped,
}

struct Ingester<'c> {
    corpus: &'c Corpus,
    max_file_size: u64,
    entries: Vec<Entry>,
    skipped: Skipped,
    raw_bytes: u64,
    new_blobs: u64,
    new_stored_bytes: u64,
    python_files_parsed: u64,
    pending: u64,
    in_tx: bool,
}

impl<'c> Ingester<'c> {
    fn new(corpus: &'c Corpus, max_file_size: u64) -> Self {
        Self {
            corpus,
            max_file_size,
            entries: Vec::new(),
            skipped: Skipped::default(),
            raw_bytes: 0,
            new_blobs: 0,
            new_stored_bytes: 0,
            python_files_parsed: 0,
            pending: 0,
            in_tx: false,
        }
    }

    fn begin(&mut self) -> Result<()> {
        if !self.in_tx {
            self.corpus.conn().execute_batch("BEGIN IMMEDIATE")?;
            self.in_tx = true;
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<()> {
        if self.in_tx {
            self.corpus.conn().execute_batch("COMMIT")?;
            self.in_tx = false;
            self.pending = 0;
        }
        Ok(())
    }

    /// Whether a file of `size` bytes is skipped for its size (symlinks never are).
    fn too_large(&mut self, size: u64, mode: u32) -> bool {
        if mode != MODE_SYMLINK && size > self.max_file_size {
            self.skipped.too_large += 1;
            return true;
        }
        false
    }

    fn add(&mut self, path: &str, mode: u32, bytes: &[u8]) -> Result<()> {
        if check_path(path).is_err() {
            self.skipped.unsafe_path += 1;
            self.skipped.example(format!("unsafe path: {path}"));
            return Ok(());
        }
        if self.too_large(bytes.len() as u64, mode) {
            return Ok(());
        }
        if mode != MODE_SYMLINK && is_binary(bytes) {
            self.skipped.binary += 1;
            return Ok(());
        }
        self.begin()?;
        let (id, stored) = self.corpus.put_blob(bytes)?;
        if let Some(n) = stored {
            self.new_blobs += 1;
            self.new_stored_bytes += n;
            self.pending += bytes.len() as u64;
        }
        self.raw_bytes += bytes.len() as u64;
        if mode != MODE_SYMLINK
            && path.ends_with(".py")
            && self.corpus.index_python_blob(&id, bytes)?
        {
            self.python_files_parsed += 1;
        }
        self.entries.push(Entry {
            path: path.to_string(),
            mode,
            blob: id,
        });
        if self.pending >= BATCH_BYTES {
            self.commit()?;
        }
        Ok(())
    }

    fn finish(
        mut self,
        name: String,
        origin: String,
        revision: Option<String>,
    ) -> Result<IngestReport> {
        let snapshot = snapshot_id(&mut self.entries);
        if let Some(w) = self.entries.windows(2).find(|w| w[0].path == w[1].path) {
            bail!("the source lists {} twice", w[0].path);
        }
        self.begin()?;
        let conn = self.corpus.conn();
        let existing = self.corpus.has_snapshot(&snapshot)?;
        if !existing {
            conn.execute(
                "INSERT INTO snapshots (id, files, raw_bytes) VALUES (?1, ?2, ?3)",
                params![snapshot, self.entries.len() as i64, self.raw_bytes as i64],
            )?;
            let mut st = conn.prepare_cached(
                "INSERT INTO snapshot_entries (snapshot, path, mode, blob) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for e in &self.entries {
                st.execute(params![snapshot, e.path, e.mode, e.blob])?;
            }
        }
        conn.execute(
            "INSERT INTO sources (name, origin, revision, snapshot, ingested_at, skipped) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                name,
                origin,
                revision,
                snapshot,
                now_utc(),
                serde_json::to_string(&self.skipped)?
            ],
        )?;
        self.commit()?;
        Ok(IngestReport {
            snapshot,
            name,
            origin,
            revision,
            files: self.entries.len(),
            raw_bytes: self.raw_bytes,
            new_blobs: self.new_blobs,
            new_stored_bytes: self.new_stored_bytes,
            python_files_parsed: self.python_files_parsed,
            existing_snapshot: existing,
            skipped: std::mem::take(&mut self.skipped),
        })
    }
}

impl Drop for Ingester<'_> {
    fn drop(&mut self) {
        // An ingest that failed keeps the blobs it stored: they are valid and a rerun reuses them.
        let _ = self.commit();
    }
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn now_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Ingests `source` and records it; the snapshot id identifies the tree.
pub fn ingest(corpus: &Corpus, source: &Source, opts: &IngestOptions) -> Result<IngestReport> {
    let name = opts.name.clone().unwrap_or_else(|| source.default_name());
    let mut ing = Ingester::new(corpus, opts.max_file_size);
    match source {
        Source::Dir(dir) => {
            ingest_dir(&mut ing, dir, &opts.exclude)?;
            let origin = std::fs::canonicalize(dir)
                .unwrap_or_else(|_| dir.clone())
                .display()
                .to_string();
            ing.finish(name, origin, None)
        }
        Source::Git { repo, rev } => {
            let commit = ingest_git(&mut ing, repo, rev)?;
            ing.finish(name, format!("{}@{rev}", repo.display()), Some(commit))
        }
        Source::Archive(path) => {
            ingest_archive(&mut ing, path)?;
            ing.finish(name, path.display().to_string(), None)
        }
        Source::Pip { name: pkg, version } => {
            let archive = pip_download(pkg, version, &opts.pip_cache)?;
            ingest_archive(&mut ing, &archive)?;
            ing.finish(name, format!("pip:{pkg}=={version}"), Some(version.clone()))
        }
    }
}

fn ingest_dir(ing: &mut Ingester, root: &Path, exclude: &[String]) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;
    let mut overrides = ignore::overrides::OverrideBuilder::new(root);
    for glob in exclude {
        overrides
            .add(&format!("!{glob}"))
            .with_context(|| format!("--exclude {glob:?}: not a valid glob"))?;
    }
    let walker = ignore::WalkBuilder::new(root)
        .overrides(overrides.build()?)
        .hidden(false)
        .parents(false)
        .require_git(false)
        .git_global(false)
        .follow_links(false)
        .filter_entry(|e| e.file_name() != ".git")
        .sort_by_file_name(|a, b| a.cmp(b))
        .build();
    for item in walker {
        let entry = match item {
            Ok(e) => e,
            Err(e) => {
                ing.skipped.unreadable += 1;
                ing.skipped.example(e.to_string());
                continue;
            }
        };
        let Some(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            continue;
        }
        let rel = entry.path().strip_prefix(root).unwrap_or(entry.path());
        let Some(path) = rel.to_str() else {
            ing.skipped.non_utf8_path += 1;
            ing.skipped
                .example(format!("non-UTF-8 path: {}", rel.display()));
            continue;
        };
        if kind.is_symlink() {
            let target = std::fs::read_link(entry.path())
                .with_context(|| format!("{}: cannot read symlink", entry.path().display()))?;
            ing.add(path, MODE_SYMLINK, target.as_os_str().as_bytes())?;
        } else if kind.is_file() {
            let meta = entry
                .metadata()
                .with_context(|| format!("{}: cannot stat", entry.path().display()))?;
            let mode = file_mode(meta.permissions().mode());
            if ing.too_large(meta.len(), mode) {
                continue;
            }
            match std::fs::read(entry.path()) {
                Ok(bytes) => ing.add(path, mode, &bytes)?,
                Err(e) => {
                    ing.skipped.unreadable += 1;
                    ing.skipped
                        .example(format!("{}: {e}", entry.path().display()));
                }
            }
        } else {
            ing.skipped.special += 1;
        }
    }
    Ok(())
}

fn git(repo: &Path, args: &[&str]) -> Result<Vec<u8>> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .context("cannot run git")?;
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(out.stdout)
}

/// Reads the committed tree of `rev` (never the work tree) through `git ls-tree` and one
/// `git cat-file --batch` process. Returns the commit id.
fn ingest_git(ing: &mut Ingester, repo: &Path, rev: &str) -> Result<String> {
    let shown = repo.display();
    git(repo, &["rev-parse", "--git-dir"])
        .with_context(|| format!("{shown}: not a git repository"))?;
    let commit = git(
        repo,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{rev}^{{commit}}"),
        ],
    )
    .map_err(|_| anyhow::anyhow!("{shown}: unknown revision {rev:?}"))?;
    let commit = String::from_utf8(commit)?.trim().to_string();
    let listing = git(
        repo,
        &["ls-tree", "-r", "-z", "--long", "--full-tree", &commit],
    )
    .with_context(|| format!("{shown}: git ls-tree {commit}"))?;
    let mut cat = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["cat-file", "--batch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run git cat-file")?;
    let mut requests = cat.stdin.take().expect("piped");
    let mut objects = BufReader::new(cat.stdout.take().expect("piped"));
    for record in listing.split(|&b| b == 0).filter(|r| !r.is_empty()) {
        // "MODE TYPE SHA SIZE\tPATH"
        let tab = record
            .iter()
            .position(|&b| b == b'\t')
            .context("git ls-tree: no tab")?;
        let meta = std::str::from_utf8(&record[..tab])?;
        let raw_path = &record[tab + 1..];
        let fields: Vec<&str> = meta.split_whitespace().collect();
        let [mode, kind, sha, size] = fields[..] else {
            bail!("git ls-tree: unexpected line {meta:?}");
        };
        let mode = match (mode, kind) {
            ("100755", "blob") => MODE_EXECUTABLE,
            ("120000", "blob") => MODE_SYMLINK,
            (_, "blob") => MODE_FILE,
            _ => {
                ing.skipped.special += 1;
                continue;
            }
        };
        let Ok(path) = std::str::from_utf8(raw_path) else {
            ing.skipped.non_utf8_path += 1;
            ing.skipped.example(format!(
                "non-UTF-8 path: {}",
                String::from_utf8_lossy(raw_path)
            ));
            continue;
        };
        if ing.too_large(size.parse().unwrap_or(u64::MAX), mode) {
            continue;
        }
        writeln!(requests, "{sha}")?;
        requests.flush()?;
        let mut header = String::new();
        objects.read_line(&mut header)?;
        let len: usize = header
            .split_whitespace()
            .nth(2)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("git cat-file: unexpected header {header:?}"))?;
        let mut bytes = vec![0; len + 1];
        objects.read_exact(&mut bytes)?;
        bytes.pop();
        ing.add(path, mode, &bytes)?;
    }
    drop(requests);
    cat.wait()?;
    Ok(commit)
}

/// The directory every path of an archive starts with (`attrs-23.2.0/` in an sdist), if any.
fn common_top_dir<'a>(paths: impl Iterator<Item = &'a str>) -> Option<String> {
    let mut top: Option<&str> = None;
    for p in paths {
        let (first, _) = p.split_once('/')?;
        match top {
            None => top = Some(first),
            Some(t) if t == first => {}
            Some(_) => return None,
        }
    }
    top.map(|t| format!("{t}/"))
}

fn ingest_archive(ing: &mut Ingester, path: &Path) -> Result<()> {
    let shown = path.display();
    let kind = archive_kind(path).with_context(|| format!("{shown}: unknown archive type"))?;
    let open = || std::fs::File::open(path).with_context(|| format!("{shown}: cannot open"));
    match kind {
        ArchiveKind::Zip => {
            let mut zip = zip::ZipArchive::new(open()?)
                .with_context(|| format!("{shown}: corrupt zip archive"))?;
            let names: Vec<String> = zip.file_names().map(str::to_string).collect();
            let strip = common_top_dir(names.iter().map(String::as_str)).unwrap_or_default();
            for i in 0..zip.len() {
                let mut file = zip
                    .by_index(i)
                    .with_context(|| format!("{shown}: corrupt zip entry {i}"))?;
                if file.is_dir() {
                    continue;
                }
                let name = file.name().to_string();
                let rel = name.strip_prefix(&strip).unwrap_or(&name).to_string();
                let unix = file.unix_mode().unwrap_or(0o644);
                let mode = if unix & 0o170000 == 0o120000 {
                    MODE_SYMLINK
                } else {
                    file_mode(unix)
                };
                if ing.too_large(file.size(), mode) {
                    continue;
                }
                let mut bytes = Vec::with_capacity(file.size() as usize);
                file.read_to_end(&mut bytes)
                    .with_context(|| format!("{shown}: corrupt zip entry {name}"))?;
                ing.add(&rel, mode, &bytes)?;
            }
        }
        ArchiveKind::TarGz | ArchiveKind::TarBz2 => {
            let reader = |file: std::fs::File| -> Box<dyn Read> {
                match kind {
                    ArchiveKind::TarGz => Box::new(flate2::read::GzDecoder::new(file)),
                    _ => Box::new(bzip2::read::BzDecoder::new(file)),
                }
            };
            // First pass: the paths only, to find the top directory every sdist has.
            let mut names = Vec::new();
            let mut archive = tar::Archive::new(reader(open()?));
            for entry in archive
                .entries()
                .with_context(|| format!("{shown}: corrupt archive"))?
            {
                let entry = entry.with_context(|| format!("{shown}: corrupt archive"))?;
                names.push(String::from_utf8_lossy(&entry.path_bytes()).into_owned());
            }
            let strip = common_top_dir(names.iter().map(String::as_str)).unwrap_or_default();
            let mut archive = tar::Archive::new(reader(open()?));
            for entry in archive
                .entries()
                .with_context(|| format!("{shown}: corrupt archive"))?
            {
                let mut entry = entry.with_context(|| format!("{shown}: corrupt archive"))?;
                let raw = entry.path_bytes().into_owned();
                let name = match String::from_utf8(raw) {
                    Ok(name) => name,
                    Err(e) => {
                        ing.skipped.non_utf8_path += 1;
                        ing.skipped.example(format!(
                            "non-UTF-8 path: {}",
                            String::from_utf8_lossy(e.as_bytes())
                        ));
                        continue;
                    }
                };
                let rel = name.strip_prefix(&strip).unwrap_or(&name).to_string();
                let header = entry.header();
                let kind = header.entry_type();
                if kind.is_dir() || kind.is_pax_global_extensions() || rel.is_empty() {
                    continue;
                }
                if kind.is_symlink() {
                    let target = entry
                        .link_name_bytes()
                        .map(|t| t.into_owned())
                        .unwrap_or_default();
                    ing.add(&rel, MODE_SYMLINK, &target)?;
                } else if kind.is_file() {
                    let mode = file_mode(header.mode().unwrap_or(0o644));
                    if ing.too_large(entry.size(), mode) {
                        continue;
                    }
                    let mut bytes = Vec::with_capacity(entry.size() as usize);
                    entry
                        .read_to_end(&mut bytes)
                        .with_context(|| format!("{shown}: corrupt archive at {name}"))?;
                    ing.add(&rel, mode, &bytes)?;
                } else {
                    ing.skipped.special += 1;
                }
            }
        }
    }
    Ok(())
}

/// Downloads the sdist of NAME==VERSION with `pip download` into the cache (once).
fn pip_download(name: &str, version: &str, cache: &Path) -> Result<PathBuf> {
    let dir = cache.join(format!("{name}-{version}"));
    let find = || -> Option<PathBuf> {
        std::fs::read_dir(&dir)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| archive_kind(p).is_some())
    };
    if let Some(found) = find() {
        return Ok(found);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let out = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--dest",
        ])
        .arg(&dir)
        .arg(format!("{name}=={version}"))
        .output()
        .context("cannot run python3 -m pip")?;
    if !out.status.success() {
        bail!(
            "pip download {name}=={version} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    find().with_context(|| {
        format!(
            "pip download {name}=={version} produced no sdist in {}",
            dir.display()
        )
    })
}
