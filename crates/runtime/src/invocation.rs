//! The helper processes' command lines (`podnet internal runtime …`) and how they are started.
//!
//! `hold DIR` and `shim DIR` detach themselves first ([`detach`]: fork, the parent exits, the
//! child goes on in its own session), so the helper is re-parented away from the caller at once:
//! the node agent can exit or restart without taking its pods along, and never has to reap its
//! helpers. The helper's stdout is a pipe and its stderr is appended to a log file in
//! the state directory; it prints `ready` (or `error: MESSAGE`) on the pipe and points its
//! stdout to `/dev/null`, and the runtime reads the pipe to its end, so it learns the outcome as
//! soon as the helper is set up or dies. (Starting a helper is one exec of the podnet binary,
//! not two as with a re-executed launcher: it is on every pod start's path.)
//!
//! `enter DIR -- ARGV…` enters a sandbox's namespaces and executes ARGV (exec, no fork).

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// A parsed `podnet internal runtime …` command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Invocation {
    /// The sandbox holder of the sandbox directory `dir`.
    Hold { dir: PathBuf },
    /// The shim of the container directory `dir`.
    Shim { dir: PathBuf },
    /// Runs `argv` in the namespaces of the sandbox directory `dir`.
    Enter { dir: PathBuf, argv: Vec<String> },
}

const READY: &str = "ready";

impl Invocation {
    /// The arguments after `podnet internal runtime`.
    pub fn to_args(&self) -> Vec<String> {
        let path = |p: &Path| p.to_str().expect("state paths are UTF-8 (checked by Runtime::open)").to_string();
        match self {
            Invocation::Hold { dir } => vec!["hold".into(), path(dir)],
            Invocation::Shim { dir } => vec!["shim".into(), path(dir)],
            Invocation::Enter { dir, argv } => {
                let mut args = vec!["enter".into(), path(dir), "--".into()];
                args.extend(argv.iter().cloned());
                args
            }
        }
    }

    /// Parses the arguments after `podnet internal runtime`.
    pub fn parse(args: &[String]) -> Result<Invocation> {
        let usage = || {
            Error::Usage(format!(
                "usage: podnet internal runtime (hold|shim) DIR | enter DIR -- COMMAND…; got {args:?}"
            ))
        };
        match args {
            [what, dir] if what == "hold" => Ok(Invocation::Hold { dir: dir.into() }),
            [what, dir] if what == "shim" => Ok(Invocation::Shim { dir: dir.into() }),
            [what, dir, sep, argv @ ..] if what == "enter" && sep == "--" && !argv.is_empty() => {
                Ok(Invocation::Enter { dir: dir.into(), argv: argv.to_vec() })
            }
            _ => Err(usage()),
        }
    }
}

/// A command running `exe internal runtime ARGS…` with a clean `CNI_COMMAND` (which would make
/// the binary a CNI plugin) and `/` as its working directory.
pub(crate) fn command(exe: &Path, inv: &Invocation) -> Command {
    let mut cmd = Command::new(exe);
    cmd.args(["internal", "runtime"]).args(inv.to_args()).env_remove("CNI_COMMAND").current_dir("/");
    cmd
}

/// The helper's first step: it forks, the parent exits, and the child goes on in a new session
/// (daemon(3) without changing directory or stdio). The runtime's wait for the process it
/// started returns at once; the helper is re-parented to the nearest subreaper (or init).
/// Must run while the process has one thread.
pub(crate) fn detach() -> Result<()> {
    nix::unistd::daemon(true, true).map_err(Error::sys("detach from the caller (daemon)"))
}

/// Starts a helper detached (`what` names it in errors) and waits until it reported that it is
/// ready or failed. Its stderr is appended to `log`.
pub(crate) fn start_helper(exe: &Path, inv: &Invocation, what: &str, log: &Path) -> Result<()> {
    let log_file = OpenOptions::new().create(true).append(true).open(log).map_err(Error::io("open", log))?;
    let out = command(exe, inv)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file)
        .output()
        .map_err(Error::io(format!("run {what}"), exe))?;
    let report = String::from_utf8_lossy(&out.stdout);
    match parse_report(&report) {
        Some(Ok(())) => Ok(()),
        Some(Err(message)) => Err(Error::Helper { what: what.into(), message }),
        None => {
            let tail = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect();
            Err(Error::Helper {
                what: what.into(),
                message: format!("it exited without reporting readiness; {}: {}", log.display(), tail.join(" | ")),
            })
        }
    }
}

/// What a helper reported on its pipe: `ready`, `error: MESSAGE`, or nothing.
pub(crate) fn parse_report(report: &str) -> Option<Result<(), String>> {
    let last = report.lines().rev().find(|l| !l.trim().is_empty())?;
    if last.trim() == READY {
        Some(Ok(()))
    } else {
        last.strip_prefix("error: ").map(|m| Err(m.to_string()))
    }
}

/// Tells the runtime the helper is ready and detaches stdout from its pipe.
pub(crate) fn report_ready() -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{READY}");
    let _ = out.flush();
    let null = OpenOptions::new().write(true).open("/dev/null").map_err(Error::io("open", "/dev/null"))?;
    nix::unistd::dup2_stdout(&null).map_err(Error::sys("redirect stdout to /dev/null"))
}

/// Tells the runtime the helper failed (the error also goes to its log).
pub(crate) fn report_failure(e: &Error) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "error: {}", e.to_string().replace('\n', " "));
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn arguments_round_trip() {
        let cases = [
            Invocation::Hold { dir: "/var/lib/podnet/rt/sandboxes/u1".into() },
            Invocation::Hold { dir: "/x y/z".into() },
            Invocation::Shim { dir: "/rt/sandboxes/u1/containers/web".into() },
            Invocation::Enter { dir: "/rt/sandboxes/u1".into(), argv: s(&["sh", "-c", "--", "echo -n hi", "--x"]) },
        ];
        for inv in cases {
            assert_eq!(Invocation::parse(&inv.to_args()).unwrap(), inv);
        }
        assert_eq!(Invocation::Enter { dir: "/d".into(), argv: s(&["ls"]) }.to_args(), s(&["enter", "/d", "--", "ls"]));
        assert_eq!(Invocation::Shim { dir: "/d".into() }.to_args(), s(&["shim", "/d"]));
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        for bad in [&[][..], &["hold"], &["hold", "run", "/d"], &["enter", "/d", "--"], &["enter", "/d", "ls"], &["x"]]
        {
            assert!(matches!(Invocation::parse(&s(bad)), Err(Error::Usage(_))), "{bad:?}");
        }
    }

    #[test]
    fn reports() {
        assert_eq!(parse_report("ready\n"), Some(Ok(())));
        assert_eq!(parse_report("error: setns: EPERM\n"), Some(Err("setns: EPERM".into())));
        assert_eq!(parse_report("error: spawn\nready\n"), Some(Ok(())));
        assert_eq!(parse_report(""), None);
        assert_eq!(parse_report("garbage\n"), None);
    }
}
