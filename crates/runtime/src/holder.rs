//! The sandbox holder (`podnet internal runtime hold DIR`), the pause process of a pod: it
//! joins the pod's network namespace, unshares a UTS namespace (with the pod's hostname) and a
//! mount namespace (a slave of the host's, with the pod's files in it), records its pid, and
//! sleeps until it is killed. Containers and `podnet exec` enter its namespaces through
//! `/proc/PID/ns/*`; they live as long as it does.

use std::fs::File;
use std::path::Path;

use nix::mount::{mount, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::unistd::sethostname;

use crate::error::{Error, Result};
use crate::invocation::{report_failure, report_ready};
use crate::mounts::Placer;
use crate::procs::ProcId;
use crate::state::{Dir, SandboxDir, SandboxRecord, HOLDER, SANDBOX};

/// The holder. Only returns on failure (reported to the runtime first).
pub(crate) fn run(dir: &Path) -> Result<()> {
    if let Err(e) = set_up(dir) {
        report_failure(&e);
        return Err(e);
    }
    report_ready()?;
    loop {
        // SIGTERM and SIGKILL keep their default action: they end the holder.
        nix::unistd::pause();
    }
}

fn set_up(dir: &Path) -> Result<()> {
    let state = Dir::open(dir)?;
    let record: SandboxRecord = state
        .read_json(SANDBOX)?
        .ok_or_else(|| Error::io("read", dir.join(SANDBOX))(std::io::ErrorKind::NotFound.into()))?;
    if let Some(netns) = &record.netns {
        let ns = File::open(netns).map_err(Error::io("open network namespace", netns))?;
        setns(&ns, CloneFlags::CLONE_NEWNET).map_err(Error::sys_at("join network namespace", netns))?;
    }
    unshare(CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWNS)
        .map_err(Error::sys("unshare UTS and mount namespaces"))?;
    sethostname(&record.hostname).map_err(Error::sys(format!("set hostname {:?}", record.hostname)))?;
    // From here on, no mount is propagated to the host (and none of ours is shared).
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_SLAVE, None::<&str>)
        .map_err(Error::sys_at("make the mount tree a slave", "/"))?;
    let layout = SandboxDir(dir.to_path_buf());
    let mut placer = Placer::default();
    for (n, file) in record.files.iter().enumerate() {
        placer.place(&file.path, &layout.file(n), file.mode)?;
    }
    let me = ProcId::current().map_err(Error::io("read", "/proc/self/stat"))?;
    state.write_json(HOLDER, &me)
}
