//! `podnet internal runtime enter DIR -- COMMAND…`: executes a command inside a sandbox's
//! network, UTS and mount namespaces (for `podnet exec` and exec probes). The process replaces
//! itself with the command, so its caller waits for, signals and reads the command directly.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use crate::error::{Error, Result};
use crate::ns::SandboxNamespaces;

/// Enters the sandbox and executes `argv`; only returns on failure. A command that cannot be
/// executed ends the process with status 127 (126 without permission), as a shell would.
pub(crate) fn run(dir: &Path, argv: &[String]) -> Result<()> {
    SandboxNamespaces::open(dir)?.enter()?;
    let e = Command::new(&argv[0]).args(&argv[1..]).exec();
    let status = if e.kind() == std::io::ErrorKind::PermissionDenied { 126 } else { 127 };
    eprintln!("error: {}", Error::io("execute", &argv[0])(e));
    std::process::exit(status)
}
