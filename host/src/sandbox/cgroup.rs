//! A pids cgroup per command, the process limit that holds as root (RLIMIT_NPROC does not). Both
//! cgroup v1 (a `pids` hierarchy) and v2 (a delegated subtree with the `pids` controller) work.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where this process may make child cgroups with a pids limit.
#[derive(Clone, Debug)]
pub struct PidsParent {
    dir: PathBuf,
}

/// This process's own cgroup under the `pids` controller, if it can make children there.
pub fn find() -> Option<PidsParent> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mut candidates = Vec::new();
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let path = path.trim_start_matches('/');
        if controllers.split(',').any(|c| c == "pids") {
            candidates.push((
                Path::new("/sys/fs/cgroup/pids").join(path),
                "cgroup v1 pids",
            ));
        } else if controllers.is_empty() {
            candidates.push((Path::new("/sys/fs/cgroup").join(path), "cgroup v2"));
        }
    }
    for (dir, kind) in candidates {
        if kind == "cgroup v2" {
            let enabled =
                std::fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
            if !enabled.split_whitespace().any(|c| c == "pids") {
                continue;
            }
        }
        if probe(&dir) {
            sweep_dead_owners(&dir);
            return Some(PidsParent { dir });
        }
    }
    None
}

/// Removes the cgroups that hosts which have died since (killed, say, before they could clean
/// up) left under `dir`: `sera-PID-N` whose PID is gone.
fn sweep_dead_owners(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if dead_owner(&e.file_name().to_string_lossy(), "sera-").is_none() {
            continue;
        }
        let cg = PidsCgroup { dir: e.path() };
        cg.kill_all();
        let _ = std::fs::remove_dir(&cg.dir);
        // Not pending: a later sweep finds it again if it is not empty yet.
        std::mem::forget(cg);
    }
}

/// The PID in `PREFIXpid-...` when no process has it any more.
pub(crate) fn dead_owner(name: &str, prefix: &str) -> Option<u32> {
    let pid: u32 = name.strip_prefix(prefix)?.split('-').next()?.parse().ok()?;
    (pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()).then_some(pid)
}

fn probe(dir: &Path) -> bool {
    // Unique per call: sandboxes made at once in one process probe side by side.
    let test = dir.join(format!(
        "sera-probe-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let ok = std::fs::create_dir(&test).is_ok() && test.join("pids.max").exists();
    let _ = std::fs::remove_dir(&test);
    ok
}

/// One command's cgroup; removed on drop once its processes are gone.
pub struct PidsCgroup {
    dir: PathBuf,
}

static NEXT: AtomicU64 = AtomicU64::new(0);

impl PidsParent {
    pub fn create(&self, max: u64) -> std::io::Result<PidsCgroup> {
        PidsCgroup::sweep();
        let dir = self.dir.join(format!(
            "sera-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&dir)?;
        let cg = PidsCgroup { dir };
        std::fs::write(cg.dir.join("pids.max"), max.to_string())?;
        Ok(cg)
    }
}

impl PidsCgroup {
    pub fn procs(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    /// Kills whatever is still in it (with a pid namespace, only the helper that reported the
    /// status is left, on its way out).
    pub fn kill_all(&self) {
        let Ok(list) = std::fs::read_to_string(self.procs()) else {
            return;
        };
        for pid in list.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            // SAFETY: a signal to a process of this command's own cgroup.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// Cgroups whose last process (the command's helper, tearing its namespaces down after it
/// reported the status) had not left yet when their call returned; removed by a later call or
/// at exit of the sandbox.
static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

impl PidsCgroup {
    fn remove(dir: &Path) -> bool {
        std::fs::remove_dir(dir).is_ok() || !dir.exists()
    }

    /// Removes the cgroups of earlier calls that have emptied since.
    pub fn sweep() {
        let mut pending = PENDING.lock().expect("cgroup list");
        pending.retain(|d| !PidsCgroup::remove(d));
    }

    /// Waits (up to 2 s each) for every pending cgroup to empty, and removes it.
    pub fn sweep_all() {
        let pending = std::mem::take(&mut *PENDING.lock().expect("cgroup list"));
        for dir in pending {
            let cg = PidsCgroup { dir };
            let start = Instant::now();
            while !PidsCgroup::remove(&cg.dir) && start.elapsed() < Duration::from_secs(2) {
                cg.kill_all();
                std::thread::sleep(Duration::from_micros(200));
            }
            std::mem::forget(cg);
        }
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        if !PidsCgroup::remove(&self.dir) {
            self.kill_all();
            PENDING.lock().expect("cgroup list").push(self.dir.clone());
        }
    }
}
