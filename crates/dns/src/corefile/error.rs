//! Errors of the Corefile: each names the file and the line, as `Corefile:7: forward: unknown
//! option "foo"`.

use thiserror::Error;

/// A Corefile that cannot be used, with the line at fault (0 when no line applies).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}{kind}", location(file, *line))]
pub struct CorefileError {
    /// The file's name as given to the parser (`Corefile` by default).
    pub file: String,
    /// 1-based line of the offending token; 0 for the whole file.
    pub line: usize,
    pub kind: ErrorKind,
}

fn location(file: &str, line: usize) -> String {
    if line == 0 {
        format!("{file}: ")
    } else {
        format!("{file}:{line}: ")
    }
}

/// What is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ErrorKind {
    #[error("cannot read: {0}")]
    Io(String),
    #[error("unterminated quoted string")]
    UnterminatedQuote,
    #[error("unexpected '{0}'")]
    Unexpected(String),
    #[error("expected '{{' after the server block's keys")]
    ExpectedOpen,
    #[error("unclosed '{{'")]
    UnclosedBlock,
    #[error("snippet {0:?} is defined twice")]
    DuplicateSnippet(String),
    #[error("import: no snippet named {0:?}")]
    UnknownSnippet(String),
    #[error("import: cycle through snippet {0:?}")]
    ImportCycle(String),
    #[error("import: missing snippet name")]
    MissingImport,
    #[error("bad server address {address:?}: {reason}")]
    BadAddress { address: String, reason: String },
    #[error("zone {zone} on port {port} is defined twice")]
    DuplicateZone { zone: String, port: u16 },
    #[error("unknown plugin {0:?}")]
    UnknownPlugin(String),
    #[error("plugin {0:?} is not supported by podnet")]
    UnsupportedPlugin(String),
    #[error("{plugin}: {message}")]
    Plugin { plugin: String, message: String },
}

impl CorefileError {
    pub(crate) fn new(file: &str, line: usize, kind: ErrorKind) -> Self {
        CorefileError { file: file.to_string(), line, kind }
    }

    /// An error in a plugin's arguments or options.
    pub(crate) fn plugin(file: &str, line: usize, plugin: &str, message: impl Into<String>) -> Self {
        Self::new(file, line, ErrorKind::Plugin { plugin: plugin.to_string(), message: message.into() })
    }
}
