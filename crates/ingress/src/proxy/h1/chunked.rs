//! The chunked transfer coding (RFC 9112 §7.1): a decoder that takes a body's data out of its
//! chunks as the bytes arrive (strictly: CRLF line ends, bounded size lines and trailers, so a
//! request cannot be read two ways), and the framing to write chunks out again. Pure.

use bytes::{BufMut, Bytes, BytesMut};

/// Bytes in a chunk-size line (with extensions) at most.
const MAX_SIZE_LINE: usize = 4096;
/// Bytes of trailer fields at most (they are read and dropped, as nginx does).
const MAX_TRAILERS: usize = 16 * 1024;

/// Why a chunked body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed chunked body: {0}")]
pub struct ChunkError(&'static str);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a chunk-size line.
    Size,
    /// In the chunk's data, with this much left.
    Data(u64),
    /// After a chunk's data: its CRLF.
    DataEnd,
    /// After the last chunk: trailer lines, this many bytes seen so far.
    Trailers(usize),
    Done,
}

/// Takes the data out of a chunked body.
#[derive(Debug, Clone)]
pub struct Decoder {
    state: State,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder { state: State::Size }
    }
}

/// What [`Decoder::decode`] found in the bytes it was given.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Body data.
    Data(Bytes),
    /// More bytes are needed.
    More,
    /// The body ended (trailers read).
    Done,
}

impl Decoder {
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes what it can from `buf`: the next piece of data, or the end of the body.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, ChunkError> {
        loop {
            match self.state {
                State::Done => return Ok(Decoded::Done),
                State::Size => {
                    let Some(line) = take_line(buf, MAX_SIZE_LINE, "chunk size line too long")? else {
                        return Ok(Decoded::More);
                    };
                    let size = chunk_size(&line)?;
                    self.state = if size == 0 { State::Trailers(0) } else { State::Data(size) };
                }
                State::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Decoded::More);
                    }
                    let n = left.min(buf.len() as u64) as usize;
                    self.state = if n as u64 == left { State::DataEnd } else { State::Data(left - n as u64) };
                    return Ok(Decoded::Data(buf.split_to(n).freeze()));
                }
                State::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Decoded::More);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(ChunkError("chunk data not followed by CRLF"));
                    }
                    let _ = buf.split_to(2);
                    self.state = State::Size;
                }
                State::Trailers(seen) => {
                    let Some(line) = take_line(buf, MAX_TRAILERS - seen, "trailers too long")? else {
                        return Ok(Decoded::More);
                    };
                    self.state = if line.len() == 2 { State::Done } else { State::Trailers(seen + line.len()) };
                }
            }
        }
    }
}

/// Splits off one CRLF-terminated line (with its CRLF), if whole; a bare LF is an error.
fn take_line(buf: &mut BytesMut, max: usize, too_long: &'static str) -> Result<Option<BytesMut>, ChunkError> {
    match buf.iter().position(|&b| b == b'\n') {
        Some(i) if i == 0 || buf[i - 1] != b'\r' => Err(ChunkError("line not ended by CRLF")),
        Some(i) if i + 1 > max => Err(ChunkError(too_long)),
        Some(i) => Ok(Some(buf.split_to(i + 1))),
        None if buf.len() >= max => Err(ChunkError(too_long)),
        None => Ok(None),
    }
}

/// The size on a chunk-size line: hex digits, then optional whitespace and `;extensions`.
fn chunk_size(line: &[u8]) -> Result<u64, ChunkError> {
    let line = &line[..line.len() - 2];
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(ChunkError("chunk size is not a hex number"));
    }
    if digits > 15 {
        return Err(ChunkError("chunk size too large"));
    }
    let rest = line[digits..].trim_ascii_start();
    if !(rest.is_empty() || rest[0] == b';') || rest.iter().any(|&b| b == b'\r' || b == 0) {
        return Err(ChunkError("invalid chunk extension"));
    }
    let hex = std::str::from_utf8(&line[..digits]).map_err(|_| ChunkError("chunk size is not a hex number"))?;
    u64::from_str_radix(hex, 16).map_err(|_| ChunkError("chunk size is not a hex number"))
}

/// Writes the line that starts a chunk of `len` bytes.
pub fn put_chunk_start(out: &mut BytesMut, len: usize) {
    out.put_slice(format!("{len:x}\r\n").as_bytes());
}

/// The end of a chunk's data.
pub const CHUNK_END: &[u8] = b"\r\n";
/// The last chunk, with no trailers.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `step` bytes; returns the data and whether it ended.
    fn decode_in_steps(input: &[u8], step: usize) -> Result<(Vec<u8>, bool), ChunkError> {
        let mut decoder = Decoder::default();
        let (mut buf, mut data) = (BytesMut::new(), Vec::new());
        for piece in input.chunks(step) {
            buf.extend_from_slice(piece);
            loop {
                match decoder.decode(&mut buf)? {
                    Decoded::Data(d) => data.extend_from_slice(&d),
                    Decoded::More => break,
                    Decoded::Done => return Ok((data, true)),
                }
            }
        }
        Ok((data, false))
    }

    #[test]
    fn decodes_whatever_the_pieces() {
        let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\nA \r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\nNEXT";
        for step in [1, 2, 3, 7, 100] {
            let (data, done) = decode_in_steps(body, step).unwrap();
            assert_eq!((data.as_slice(), done), (&b"hello world0123456789"[..], true), "step {step}");
        }
        let mut buf = BytesMut::from(&body[..]);
        let mut decoder = Decoder::default();
        while decoder.decode(&mut buf).unwrap() != Decoded::Done {}
        assert_eq!(&buf[..], b"NEXT", "what follows the body stays");
        assert_eq!(decode_in_steps(b"5\r\nhel", 2).unwrap(), (b"hel".to_vec(), false));
    }

    #[test]
    fn refuses_what_could_be_read_two_ways() {
        for bad in [
            &b"5\nhello\r\n0\r\n\r\n"[..],
            b"5\r\nhelloX\r\n0\r\n\r\n",
            b"zz\r\n",
            b"-5\r\nhello\r\n",
            b"5 x\r\nhello\r\n",
            b"10000000000000000\r\n",
            b"0\r\nX: y\n\r\n",
        ] {
            assert!(decode_in_steps(bad, 64).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let long_line = [b"5;".as_slice(), &[b'a'; MAX_SIZE_LINE]].concat();
        assert!(decode_in_steps(&long_line, 1000).is_err());
    }
}
