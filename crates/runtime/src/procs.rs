//! Process identity: a pid together with its start time (field 22 of `/proc/PID/stat`, in clock
//! ticks since boot), so that a pid reused by another process is not taken for the one recorded.

use std::io;

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// A process recorded in the state directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProcId {
    /// The process id.
    pub pid: u32,
    /// Its start time in clock ticks since boot.
    pub start_ticks: u64,
}

/// What `/proc/PID/stat` says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    /// The state letter (`R`, `S`, `Z`…).
    pub state: char,
    /// The process group id.
    pub pgrp: u32,
    /// The start time in clock ticks since boot.
    pub start_ticks: u64,
}

impl Stat {
    /// Whether the process is dead (a zombie nobody reaped yet, or being torn down).
    pub fn is_dead(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Parses the contents of `/proc/PID/stat`. The command name (field 2) is in parentheses and
/// may itself contain spaces and parentheses, so the fields are counted from the last `)`.
pub(crate) fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // Fields 3 (state), 4 (ppid), 5 (pgrp) … 22 (starttime).
    let state = fields.next()?.chars().next()?;
    let pgrp = fields.nth(1)?.parse().ok()?;
    let start_ticks = fields.nth(16)?.parse().ok()?;
    Some(Stat { state, pgrp, start_ticks })
}

/// The stat of a process, `None` if there is no such process.
pub(crate) fn stat(pid: u32) -> io::Result<Option<Stat>> {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(text) => {
            Ok(Some(parse_stat(&text).ok_or_else(|| io::Error::other(format!("unexpected /proc/{pid}/stat")))?))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc_esrch()) => Ok(None),
        Err(e) => Err(e),
    }
}

fn libc_esrch() -> i32 {
    nix::errno::Errno::ESRCH as i32
}

/// Whether process `pid` exists and has not exited (a zombie nobody reaped yet does not count).
pub fn process_running(pid: u32) -> bool {
    matches!(stat(pid), Ok(Some(s)) if !s.is_dead())
}

impl ProcId {
    /// The calling process.
    pub fn current() -> io::Result<ProcId> {
        let pid = std::process::id();
        ProcId::of(pid)?.ok_or_else(|| io::Error::other("no /proc/self/stat"))
    }

    /// The process `pid` as it is now (also a zombie), `None` if there is none.
    pub fn of(pid: u32) -> io::Result<Option<ProcId>> {
        Ok(stat(pid)?.map(|s| ProcId { pid, start_ticks: s.start_ticks }))
    }

    /// Whether this very process is still alive (not a zombie, not another process reusing its
    /// pid).
    pub fn is_alive(&self) -> bool {
        matches!(stat(self.pid), Ok(Some(s)) if s.start_ticks == self.start_ticks && !s.is_dead())
    }

    /// Sends `signal` to the process, if it is still this one.
    pub fn signal(&self, signal: Signal) {
        if self.is_alive() {
            let _ = kill(self.pid(), signal);
        }
    }

    /// Sends `signal` to the process group this process leads (containers run in their own
    /// group), and to the process itself only if it left the group (a process gets the signal
    /// once: a second SIGTERM means "hurry" to some programs). The group is only signalled while
    /// its leader is still this process (alive or a zombie nobody reaped), or already gone without
    /// a successor with the same pid: a pgid is not reused while the group has members.
    pub fn signal_group(&self, signal: Signal) {
        match stat(self.pid) {
            Ok(Some(s)) if s.start_ticks != self.start_ticks => {}
            Ok(Some(s)) => {
                let _ = killpg(self.pid(), signal);
                if s.pgrp != self.pid {
                    self.signal(signal);
                }
            }
            Ok(None) => {
                let _ = killpg(self.pid(), signal);
            }
            Err(_) => {}
        }
    }

    /// The pid as nix wants it.
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.pid as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_names() {
        let line = "1234 (a (b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 \
                    18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(parse_stat(line), Some(Stat { state: 'S', pgrp: 1234, start_ticks: 987654 }));
        let zombie = "7 (sh) Z 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 42 0 0";
        let s = parse_stat(zombie).unwrap();
        assert!(s.is_dead());
        assert_eq!(s.pgrp, 7);
        assert_eq!(s.start_ticks, 42);
        assert_eq!(parse_stat("7 (sh) S 1"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn knows_itself() {
        let me = ProcId::current().unwrap();
        assert_eq!(me.pid, std::process::id());
        assert!(me.is_alive());
        assert!(!ProcId { start_ticks: me.start_ticks + 1, ..me }.is_alive());
        assert!(!ProcId { pid: u32::MAX / 2, start_ticks: 0 }.is_alive());
    }
}
