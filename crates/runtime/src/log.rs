//! Container logs, in the CRI format kubelet reads: one entry per line,
//! `2026-11-22T10:00:00.000000000Z stdout F the line`: an RFC 3339 UTC timestamp with
//! nanoseconds, the stream (`stdout` or `stderr`), `F` for a full line or `P` for a part of a line
//! longer than [`MAX_LINE`] bytes (the rest follows in the next entries), then the content without
//! its newline. All runs of a container are appended to one file. [`copy_log`] turns it back
//! into the container's output, for `podnet logs`.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};

/// Lines longer than this are split into partial (`P`) entries.
pub const MAX_LINE: usize = 16 * 1024;

/// A container's output stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// An RFC 3339 UTC timestamp with nanoseconds, as in CRI logs.
pub fn timestamp(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
}

/// One log entry, `TIME STREAM F|P CONTENT` plus a newline.
pub(crate) fn format_entry(time: &str, stream: Stream, partial: bool, content: &[u8]) -> Vec<u8> {
    let mut entry = Vec::with_capacity(time.len() + content.len() + 12);
    entry.extend_from_slice(time.as_bytes());
    entry.push(b' ');
    entry.extend_from_slice(stream.name().as_bytes());
    entry.extend_from_slice(if partial { b" P " } else { b" F " });
    entry.extend_from_slice(content);
    entry.push(b'\n');
    entry
}

/// Copies a stream into the log as entries until the stream ends. Each entry is one `write` to
/// the shared file, which is opened for appending.
pub(crate) fn pump(source: impl Read, stream: Stream, log: &Arc<Mutex<File>>) -> io::Result<()> {
    let mut reader = BufReader::with_capacity(MAX_LINE, source);
    let mut line = Vec::new();
    let emit = |line: &[u8], partial: bool| -> io::Result<()> {
        let entry = format_entry(&timestamp(SystemTime::now()), stream, partial, line);
        log.lock().unwrap_or_else(|p| p.into_inner()).write_all(&entry)
    };
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            if !line.is_empty() {
                emit(&line, false)?;
            }
            return Ok(());
        }
        let take = &buf[..buf.len().min(MAX_LINE - line.len())];
        match take.iter().position(|&b| b == b'\n') {
            Some(i) => {
                line.extend_from_slice(&take[..i]);
                reader.consume(i + 1);
                emit(&line, false)?;
                line.clear();
            }
            None => {
                let n = take.len();
                line.extend_from_slice(take);
                reader.consume(n);
                if line.len() == MAX_LINE {
                    emit(&line, true)?;
                    line.clear();
                }
            }
        }
    }
}

/// A parsed log entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogEntry<'a> {
    /// The RFC 3339 timestamp.
    pub time: &'a str,
    /// `stdout` or `stderr`.
    pub stream: &'a str,
    /// Whether this is a part of a line that continues in the next entry.
    pub partial: bool,
    /// The content, without a newline.
    pub content: &'a [u8],
}

/// Parses one log line (without its newline); `None` if it is not a CRI entry.
pub fn parse_entry(line: &[u8]) -> Option<LogEntry<'_>> {
    let mut parts = line.splitn(4, |&b| b == b' ');
    let time = std::str::from_utf8(parts.next()?).ok()?;
    let stream = std::str::from_utf8(parts.next()?).ok()?;
    let partial = match parts.next()? {
        b"F" => false,
        b"P" => true,
        _ => return None,
    };
    let content = parts.next().unwrap_or_default();
    if !time.ends_with('Z') || !matches!(stream, "stdout" | "stderr") {
        return None;
    }
    Some(LogEntry { time, stream, partial, content })
}

/// Writes the container output recorded in the log file `path` to `out` (the CRI prefixes
/// stripped, partial entries joined; lines that are not CRI entries are copied as they are).
/// At the end of the file, `follow` is asked whether to wait for more: `podnet logs -f` passes
/// "is the container still running?", plain `podnet logs` passes `|| false`. A missing file is
/// an empty log.
pub fn copy_log(path: &Path, out: &mut dyn Write, follow: &mut dyn FnMut() -> bool) -> Result<()> {
    let write_err = Error::io("write the log of", path);
    let mut file = loop {
        match File::open(path) {
            Ok(f) => break f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !follow() {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(Error::io("open", path)(e)),
        }
    };
    let mut pending = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let keep_following = follow();
        loop {
            let n = file.read(&mut chunk).map_err(Error::io("read", path))?;
            if n == 0 {
                break;
            }
            pending.extend_from_slice(&chunk[..n]);
            let end = match pending.iter().rposition(|&b| b == b'\n') {
                Some(i) => i + 1,
                None => continue,
            };
            let mut text = Vec::with_capacity(end);
            for line in pending[..end - 1].split(|&b| b == b'\n') {
                match parse_entry(line) {
                    Some(e) => {
                        text.extend_from_slice(e.content);
                        if !e.partial {
                            text.push(b'\n');
                        }
                    }
                    None => {
                        text.extend_from_slice(line);
                        text.push(b'\n');
                    }
                }
            }
            pending.drain(..end);
            out.write_all(&text).and_then(|()| out.flush()).map_err(|e| Error::io("write the log of", path)(e))?;
        }
        if !keep_following {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // An entry still being written when the container stopped: copy what there is.
    if !pending.is_empty() {
        out.write_all(&pending).map_err(write_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pumped(input: &[u8], stream: Stream) -> Vec<u8> {
        let tmp = tempfile::NamedTempFile::new().unwrap();
        let file = Arc::new(Mutex::new(tmp.reopen().unwrap()));
        pump(input, stream, &file).unwrap();
        std::fs::read(tmp.path()).unwrap()
    }

    fn copied(log: &[u8]) -> Vec<u8> {
        let tmp = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(tmp.path(), log).unwrap();
        let mut out = Vec::new();
        copy_log(tmp.path(), &mut out, &mut || false).unwrap();
        out
    }

    #[test]
    fn timestamps_are_rfc3339_nanos() {
        let t = SystemTime::UNIX_EPOCH + Duration::new(1_795_341_600, 5);
        assert_eq!(timestamp(t), "2026-11-22T10:00:00.000000005Z");
    }

    #[test]
    fn entries_are_cri_lines() {
        let log = pumped(b"hello world\n\nlast without newline", Stream::Stderr);
        let text = String::from_utf8(log.clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].ends_with(" stderr F hello world"), "{}", lines[0]);
        assert!(lines[1].ends_with(" stderr F "), "{}", lines[1]);
        assert!(lines[2].ends_with(" stderr F last without newline"));
        let e = parse_entry(lines[0].as_bytes()).unwrap();
        assert_eq!((e.stream, e.partial, e.content), ("stderr", false, &b"hello world"[..]));
        assert_eq!(e.time.len(), "2026-11-22T10:00:00.000000000Z".len());
        assert_eq!(copied(&log), b"hello world\n\nlast without newline\n");
    }

    #[test]
    fn long_lines_are_split_and_joined() {
        let mut input = vec![b'x'; MAX_LINE * 2 + 10];
        input.push(b'\n');
        input.extend_from_slice(b"next\n");
        let log = pumped(&input, Stream::Stdout);
        let text = String::from_utf8(log.clone()).unwrap();
        let tags: Vec<&str> = text.lines().map(|l| l.split(' ').nth(2).unwrap()).collect();
        assert_eq!(tags, ["P", "P", "F", "F"]);
        assert_eq!(copied(&log), input);
    }

    #[test]
    fn parses_and_rejects() {
        let e = parse_entry(b"2026-11-22T10:00:00.000000000Z stdout P a b  c").unwrap();
        assert_eq!((e.stream, e.partial, e.content), ("stdout", true, &b"a b  c"[..]));
        assert_eq!(parse_entry(b"2026-11-22T10:00:00.000000000Z stdout F").unwrap().content, b"");
        assert_eq!(parse_entry(b"plain text line"), None);
        assert_eq!(parse_entry(b"2026-11-22T10:00:00Z stdin F x"), None);
        // Plain lines pass through unchanged.
        assert_eq!(copied(b"plain\n2026-11-22T10:00:00.000000000Z stdout F x\n"), b"plain\nx\n");
        let mut out = Vec::new();
        copy_log(Path::new("/nonexistent/log"), &mut out, &mut || false).unwrap();
        assert!(out.is_empty());
    }
}
