//! A pids cgroup per command, the process limit that holds as root (RLIMIT_NPROC does not). Both
//! cgroup v1 (a `pids` hierarchy) and v2 (a delegated subtree with the `pids` controller) work.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
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
            return Some(PidsParent { dir });
        }
    }
    None
}

fn probe(dir: &Path) -> bool {
    let test = dir.join(format!("sera-probe-{}", std::process::id()));
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

    /// Kills whatever is still in it (the command's namespace is already gone in practice).
    pub fn kill_all(&self) {
        for _ in 0..3 {
            let Ok(list) = std::fs::read_to_string(self.procs()) else {
                return;
            };
            let pids: Vec<i32> = list.lines().filter_map(|l| l.trim().parse().ok()).collect();
            if pids.is_empty() {
                return;
            }
            for pid in pids {
                // SAFETY: a signal to a process of this command's own cgroup.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        let start = Instant::now();
        // Killed processes leave the cgroup a moment after their parent sees them exit.
        while std::fs::remove_dir(&self.dir).is_err() && start.elapsed() < Duration::from_secs(2) {
            self.kill_all();
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}
