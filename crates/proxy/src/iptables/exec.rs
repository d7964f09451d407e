//! Running the iptables tools of the calling thread's network namespace: `iptables-save`,
//! `iptables-restore` (and their `ip6tables-` twins), with the flags kube-proxy passes —
//! `-w 5 -W 100000 --noflush --counters` — and the two sysctls the mode reads or sets.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::Error;

use super::Family;

/// `iptables-save`/`ip6tables-save`.
pub fn save_program(family: Family) -> &'static str {
    match family {
        Family::V4 => "iptables-save",
        Family::V6 => "ip6tables-save",
    }
}

/// `iptables-restore`/`ip6tables-restore`.
pub fn restore_program(family: Family) -> &'static str {
    match family {
        Family::V4 => "iptables-restore",
        Family::V6 => "ip6tables-restore",
    }
}

/// kube-proxy's restore flags: wait up to 5 s for the xtables lock, polling every 100 ms, keep
/// the chains the input does not name, keep counters.
pub const RESTORE_ARGS: &[&str] = &["-w", "5", "-W", "100000", "--noflush", "--counters"];

fn spawn_error(program: &str, e: std::io::Error) -> Error {
    let message = if e.kind() == std::io::ErrorKind::NotFound {
        format!("not found ({e}): the iptables mode needs the iptables package")
    } else {
        format!("cannot run: {e}")
    };
    Error::Program { program: program.to_string(), message }
}

/// `iptables-save -t TABLE` for each of `tables`, concatenated.
pub fn save(family: Family, tables: &[&str]) -> Result<String, Error> {
    let program = save_program(family);
    let mut text = String::new();
    for table in tables {
        let out = Command::new(program).args(["-t", table]).output().map_err(|e| spawn_error(program, e))?;
        if !out.status.success() {
            return Err(Error::Program {
                program: program.to_string(),
                message: format!("-t {table}: {}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()),
            });
        }
        text.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    Ok(text)
}

/// Whether the save tool of `family` is installed (cleanup of a family whose tools are missing
/// has nothing to do).
pub fn available(family: Family) -> bool {
    match Command::new(save_program(family)).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status() {
        Ok(_) => true,
        Err(e) => e.kind() != std::io::ErrorKind::NotFound,
    }
}

/// Feeds `input` to `iptables-restore` with [`RESTORE_ARGS`]. A failure names the line the tool
/// rejected, with the lines around it.
pub fn restore(family: Family, input: &str) -> Result<(), Error> {
    let program = restore_program(family);
    let mut child = Command::new(program)
        .args(RESTORE_ARGS)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| spawn_error(program, e))?;
    let written = child.stdin.take().map(|mut stdin| stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().map_err(|e| spawn_error(program, e))?;
    if out.status.success() {
        if let Some(Err(e)) = written {
            return Err(Error::Io { what: format!("write {program} input"), source: e });
        }
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let mut message = format!("{}: {stderr}", out.status);
    if let Some(line) = failed_line(&stderr) {
        message.push_str(&format!("\n{}", context(input, line, 3)));
    }
    Err(Error::Program { program: program.to_string(), message })
}

/// The input line an `iptables-restore` error names (`line 12 failed`, `Error occurred at line: 12`).
pub fn failed_line(stderr: &str) -> Option<usize> {
    stderr.match_indices("line").find_map(|(at, _)| {
        let rest = stderr[at + 4..].trim_start_matches([':', ' ']);
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    })
}

/// Lines `line`±`around` of `input` (1-based), numbered, the failed one marked.
pub fn context(input: &str, line: usize, around: usize) -> String {
    input
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(n, _)| n + around >= line && *n <= line + around)
        .map(|(n, l)| format!("{}{n:>5}: {l}", if n == line { "=>" } else { "  " }))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `net.netfilter.nf_conntrack_tcp_be_liberal` is set: kube-proxy then keeps INVALID packets.
pub fn conntrack_tcp_liberal() -> bool {
    std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_tcp_be_liberal")
        .is_ok_and(|v| v.trim() != "0" && !v.trim().is_empty())
}

/// Sets `net.ipv4.conf.all.route_localnet=1` (node ports on 127.0.0.1), as kube-proxy does.
pub fn enable_route_localnet() -> Result<(), Error> {
    let path = "/proc/sys/net/ipv4/conf/all/route_localnet";
    if std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "1") {
        return Ok(());
    }
    std::fs::write(path, "1").map_err(|e| Error::Io { what: format!("write {path}"), source: e })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_lines_and_their_context() {
        assert_eq!(failed_line("iptables-restore: line 7 failed"), Some(7));
        assert_eq!(
            failed_line("iptables-restore v1.8.9 (nf_tables): unknown option \"--x\"\nError occurred at line: 3"),
            Some(3)
        );
        assert_eq!(failed_line("Another app is currently holding the xtables lock"), None);
        let input = "a\nb\nc\nd\ne\n";
        assert_eq!(context(input, 3, 1), "      2: b\n=>    3: c\n      4: d");
    }
}
