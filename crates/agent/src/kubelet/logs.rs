//! Container logs as kubelet serves them: the runtime keeps every run of a container in one
//! CRI-format file, so a run is the window of entries between its start and the next run's
//! start. [`LineReader`] turns the file's bytes into the window's lines (partial entries
//! joined), [`stream_log`] drives it over the file, following it while the run lasts.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::time::{Duration, SystemTime};

use podnet_runtime::log::timestamp;
use podnet_runtime::{parse_entry, ContainerState, ContainerStatus};

use super::query::LogOptions;

/// The entries of one run: timestamps in `[from, until)` (RFC 3339 with nanoseconds, which
/// compare as strings).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Window {
    pub from: Option<String>,
    pub until: Option<String>,
}

impl Window {
    fn contains(&self, time: &str) -> bool {
        self.from.as_deref().is_none_or(|f| time >= f) && self.until.as_deref().is_none_or(|u| time < u)
    }

    /// Narrows the start to `since` (only entries at or after it).
    pub fn since(mut self, since: Option<String>) -> Window {
        if let Some(s) = since {
            if self.from.as_deref().is_none_or(|f| s.as_str() > f) {
                self.from = Some(s);
            }
        }
        self
    }
}

/// When a run started.
pub fn started_at(state: &ContainerState) -> SystemTime {
    match state {
        ContainerState::Running { started_at, .. } | ContainerState::Exited { started_at, .. } => *started_at,
    }
}

/// The window of the current run, or with `previous` of the one before; `None` if there was no
/// run before.
pub fn window(status: &ContainerStatus, previous: bool) -> Option<Window> {
    let current = timestamp(started_at(&status.state));
    if !previous {
        return Some(Window { from: Some(current), until: None });
    }
    let last = status.last_state.as_ref()?;
    Some(Window { from: Some(timestamp(started_at(last))), until: Some(current) })
}

/// The start `sinceSeconds` or `sinceTime` ask for, as a log timestamp.
pub fn since(opts: &LogOptions, now: SystemTime) -> Result<Option<String>, String> {
    if let Some(secs) = opts.since_seconds {
        return Ok(Some(timestamp(now.checked_sub(Duration::from_secs(secs)).unwrap_or(SystemTime::UNIX_EPOCH))));
    }
    match &opts.since_time {
        None => Ok(None),
        Some(t) => {
            let parsed =
                chrono::DateTime::parse_from_rfc3339(t).map_err(|e| format!("invalid sinceTime {t:?}: {e}"))?;
            Ok(Some(timestamp(SystemTime::from(parsed.with_timezone(&chrono::Utc)))))
        }
    }
}

/// One line of a container's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The timestamp of its (first) entry.
    pub time: String,
    pub stderr: bool,
    /// The content with its newline.
    pub text: Vec<u8>,
}

impl Line {
    /// The line as `/containerLogs` sends it, with its timestamp first if asked for.
    pub fn render(&self, timestamps: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.text.len() + 32);
        if timestamps {
            out.extend_from_slice(self.time.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(&self.text);
        out
    }
}

/// Turns log bytes, fed in any pieces, into the lines of a window.
#[derive(Debug, Default)]
pub struct LineReader {
    window: Window,
    /// Bytes after the last newline.
    pending: Vec<u8>,
    /// A line whose partial entries have been read, not its last one.
    partial: Option<Line>,
}

impl LineReader {
    pub fn new(window: Window) -> LineReader {
        LineReader { window, ..LineReader::default() }
    }

    /// The complete lines the bytes finish.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Line> {
        self.pending.extend_from_slice(bytes);
        let Some(end) = self.pending.iter().rposition(|&b| b == b'\n') else {
            return Vec::new();
        };
        let chunk: Vec<u8> = self.pending.drain(..=end).collect();
        chunk[..chunk.len() - 1].split(|&b| b == b'\n').filter_map(|l| self.entry(l)).collect()
    }

    fn entry(&mut self, raw: &[u8]) -> Option<Line> {
        let e = parse_entry(raw)?;
        if !self.window.contains(e.time) {
            return None;
        }
        let line = self.partial.get_or_insert_with(|| Line {
            time: e.time.to_string(),
            stderr: e.stream == "stderr",
            text: Vec::new(),
        });
        line.text.extend_from_slice(e.content);
        if e.partial {
            return None;
        }
        line.text.push(b'\n');
        self.partial.take()
    }

    /// What is left at the end: a line whose last entry never came.
    pub fn finish(&mut self) -> Option<Line> {
        self.partial.take()
    }
}

/// The last `n` lines (all without a limit).
pub fn tail(mut lines: Vec<Line>, n: Option<usize>) -> Vec<Line> {
    if let Some(n) = n {
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    lines
}

/// How often a followed log is read again.
const POLL: Duration = Duration::from_millis(100);

/// Sends the lines of the log at `path` to `emit` (the last `tail_lines` of what is there, then
/// what follows while `follow` says so). Stops early when `emit` returns false (the client is
/// gone). A missing file is an empty log, or, while following, one not written yet.
pub fn stream_log(
    path: &Path,
    mut reader: LineReader,
    tail_lines: Option<usize>,
    follow: &mut dyn FnMut() -> bool,
    emit: &mut dyn FnMut(Line) -> bool,
) -> io::Result<()> {
    let mut file = loop {
        match File::open(path) {
            Ok(f) => break f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !follow() {
                    return Ok(());
                }
                std::thread::sleep(POLL);
            }
            Err(e) => return Err(e),
        }
    };
    let mut existing = Vec::new();
    file.read_to_end(&mut existing)?;
    for line in tail(reader.feed(&existing), tail_lines) {
        if !emit(line) {
            return Ok(());
        }
    }
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let keep_following = follow();
        loop {
            let n = file.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            for line in reader.feed(&chunk[..n]) {
                if !emit(line) {
                    return Ok(());
                }
            }
        }
        if !keep_following {
            break;
        }
        std::thread::sleep(POLL);
    }
    if let Some(line) = reader.finish() {
        emit(line);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "2026-01-01T00:00:01.000000000Z stdout F one\n\
        2026-01-01T00:00:02.000000000Z stderr F two\n\
        2026-01-01T00:00:03.000000000Z stdout P thr\n\
        2026-01-01T00:00:03.100000000Z stdout F ee\n\
        not a cri line\n\
        2026-01-01T00:00:04.000000000Z stdout F four\n";

    fn texts(lines: &[Line]) -> Vec<String> {
        lines.iter().map(|l| String::from_utf8(l.text.clone()).unwrap()).collect()
    }

    #[test]
    fn reads_lines_in_pieces() {
        let mut r = LineReader::new(Window::default());
        let mut lines = Vec::new();
        for piece in LOG.as_bytes().chunks(7) {
            lines.extend(r.feed(piece));
        }
        assert_eq!(texts(&lines), ["one\n", "two\n", "three\n", "four\n"]);
        assert!(lines[1].stderr && !lines[0].stderr);
        assert_eq!(lines[2].time, "2026-01-01T00:00:03.000000000Z");
        assert_eq!(lines[0].render(true), b"2026-01-01T00:00:01.000000000Z one\n");
        assert_eq!(texts(&tail(lines, Some(2))), ["three\n", "four\n"]);
    }

    #[test]
    fn windows_select_a_run() {
        let w = Window { from: Some("2026-01-01T00:00:02.000000000Z".into()), until: None };
        assert_eq!(texts(&LineReader::new(w.clone()).feed(LOG.as_bytes())), ["two\n", "three\n", "four\n"]);
        let w = Window { from: None, until: Some("2026-01-01T00:00:03.000000000Z".into()) };
        assert_eq!(texts(&LineReader::new(w).feed(LOG.as_bytes())), ["one\n", "two\n"]);
        let later = Window { from: Some("2026-01-01T00:00:01.000000000Z".into()), until: None }
            .since(Some("2026-01-01T00:00:04.000000000Z".into()));
        assert_eq!(texts(&LineReader::new(later).feed(LOG.as_bytes())), ["four\n"]);
        let mut r = LineReader::new(Window::default());
        assert!(r.feed(b"2026-01-01T00:00:01.000000000Z stdout P cut\n").is_empty());
        assert_eq!(r.finish().unwrap().text, b"cut");
    }

    #[test]
    fn windows_of_runs_and_since() {
        let t = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        let exited = |start, end| ContainerState::Exited {
            exit_code: 0,
            signal: None,
            started_at: t(start),
            finished_at: t(end),
            reason: "Completed".into(),
            message: String::new(),
        };
        let status = ContainerStatus {
            name: "c".into(),
            state: exited(20, 30),
            last_state: Some(exited(10, 15)),
            restart_count: 1,
            log_path: "/x".into(),
        };
        assert_eq!(window(&status, false).unwrap().from.unwrap(), timestamp(t(20)));
        let prev = window(&status, true).unwrap();
        assert_eq!((prev.from.unwrap(), prev.until.unwrap()), (timestamp(t(10)), timestamp(t(20))));
        assert!(window(&ContainerStatus { last_state: None, ..status }, true).is_none());
        let opts = LogOptions { since_seconds: Some(5), ..LogOptions::default() };
        assert_eq!(since(&opts, t(100)).unwrap().unwrap(), timestamp(t(95)));
        let opts = LogOptions { since_time: Some("1970-01-01T00:01:00Z".into()), ..LogOptions::default() };
        assert_eq!(since(&opts, t(100)).unwrap().unwrap(), timestamp(t(60)));
        assert!(since(&LogOptions { since_time: Some("x".into()), ..opts }, t(0)).is_err());
    }

    #[test]
    fn streams_a_file() {
        let tmp = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(tmp.path(), LOG).unwrap();
        let mut got = Vec::new();
        let r = LineReader::new(Window::default());
        stream_log(tmp.path(), r, Some(1), &mut || false, &mut |l| {
            got.push(l);
            true
        })
        .unwrap();
        assert_eq!(texts(&got), ["four\n"]);
        let mut n = 0;
        stream_log(Path::new("/nonexistent/log"), LineReader::default(), None, &mut || false, &mut |_| {
            n += 1;
            true
        })
        .unwrap();
        assert_eq!(n, 0);
    }
}
