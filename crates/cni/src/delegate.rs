//! Delegation to another plugin (an IPAM plugin other than host-local): found in `CNI_PATH`, run
//! with this invocation's environment (`CNI_COMMAND` set to the command) and the same stdin; its
//! result is read back, its error JSON passed on unchanged.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::env::Env;
use crate::error::{CniError, CniResult};
use crate::types::AddResult;

/// The executable `name` in the first directory of `path` that has it.
pub fn find(name: &str, path: &[PathBuf]) -> CniResult<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    for dir in path {
        let p = dir.join(name);
        if let Ok(md) = std::fs::metadata(&p) {
            if md.is_file() && md.permissions().mode() & 0o111 != 0 {
                return Ok(p);
            }
        }
    }
    let dirs: Vec<String> = path.iter().map(|p| p.display().to_string()).collect();
    Err(CniError::InvalidEnv(format!("plugin {name:?} not found in CNI_PATH ({})", dirs.join(":"))))
}

/// Runs plugin `exe` for `command` with `stdin`; returns its stdout on success.
pub fn exec(exe: &Path, command: &str, env: &Env, stdin: &[u8]) -> CniResult<Vec<u8>> {
    let mut cmd = Command::new(exe);
    cmd.env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", &env.container_id)
        .env("CNI_IFNAME", &env.ifname)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match &env.netns {
        Some(n) => cmd.env("CNI_NETNS", n),
        None => cmd.env_remove("CNI_NETNS"),
    };
    let mut child = cmd.spawn().map_err(|e| CniError::Internal(format!("cannot run {}: {e}", exe.display())))?;
    let _ = child.stdin.take().expect("piped").write_all(stdin);
    let out = child.wait_with_output().map_err(|e| CniError::Internal(format!("{}: {e}", exe.display())))?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    let parsed = serde_json::from_slice::<Value>(&out.stdout).ok().and_then(|v| CniError::from_json(&v));
    Err(parsed.unwrap_or_else(|| {
        CniError::Internal(format!(
            "{} {command} failed ({}): {}",
            exe.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }))
}

/// Runs the IPAM plugin `name` for `command`; for ADD returns its result.
pub fn ipam(name: &str, command: &str, env: &Env, stdin: &[u8]) -> CniResult<Option<AddResult>> {
    let exe = find(name, &env.path)?;
    let out = exec(&exe, command, env, stdin)?;
    if command != "ADD" {
        return Ok(None);
    }
    let v: Value = serde_json::from_slice(&out)
        .map_err(|e| CniError::Decode(format!("cannot read the result of IPAM plugin {name}: {e}")))?;
    AddResult::from_json(&v).map(Some).map_err(|e| e.context(format_args!("IPAM plugin {name}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_names_the_path() {
        let e = find("nope", &[PathBuf::from("/nonexistent-a"), PathBuf::from("/nonexistent-b")]).unwrap_err();
        assert_eq!(e.code(), 4);
        assert_eq!(e.to_string(), "plugin \"nope\" not found in CNI_PATH (/nonexistent-a:/nonexistent-b)");
        assert!(find("sh", &[PathBuf::from("/bin")]).is_ok());
    }
}
