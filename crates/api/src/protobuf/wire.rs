//! The protobuf wire format, schema-free: varints, length-delimited fields, and the fixed-width
//! fields it skips or reads as doubles.

/// A wire-format field value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Value<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2: strings, bytes, messages, packed repeated scalars.
    Bytes(&'a [u8]),
    /// Wire type 5.
    Fixed32(u32),
}

impl Value<'_> {
    pub(super) fn wire_type(&self) -> u8 {
        match self {
            Value::Varint(_) => 0,
            Value::Fixed64(_) => 1,
            Value::Bytes(_) => 2,
            Value::Fixed32(_) => 5,
        }
    }
}

/// What went wrong reading the wire format, before the schema gives it a context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WireError {
    /// The data ends inside the field with this tag (0: inside its key).
    Truncated(u32),
    /// A varint longer than 10 bytes, in the field with this tag (0: in its key).
    Varint(u32),
    /// Field number 0, or one above 2^29 - 1.
    BadTag(u64),
    /// Groups (wire types 3 and 4) and the undefined wire types 6 and 7.
    WireType { tag: u32, wire_type: u8 },
}

/// Reads `(tag, value)` fields from one message's bytes.
pub(super) struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Fields { buf, pos: 0 }
    }

    /// The next field, `None` at the end of the message.
    pub(super) fn next_field(&mut self) -> Result<Option<(u32, Value<'a>)>, WireError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = varint(self.buf, &mut self.pos).map_err(|e| e.in_field(0))?;
        let number = key >> 3;
        if number == 0 || number > (1 << 29) - 1 {
            return Err(WireError::BadTag(number));
        }
        let tag = number as u32;
        let value = match (key & 7) as u8 {
            0 => Value::Varint(varint(self.buf, &mut self.pos).map_err(|e| e.in_field(tag))?),
            1 => Value::Fixed64(u64::from_le_bytes(self.take(8, tag)?.try_into().expect("8 bytes"))),
            2 => {
                let len = varint(self.buf, &mut self.pos).map_err(|e| e.in_field(tag))?;
                let len = usize::try_from(len).map_err(|_| WireError::Truncated(tag))?;
                Value::Bytes(self.take(len, tag)?)
            }
            5 => Value::Fixed32(u32::from_le_bytes(self.take(4, tag)?.try_into().expect("4 bytes"))),
            wire_type => return Err(WireError::WireType { tag, wire_type }),
        };
        Ok(Some((tag, value)))
    }

    fn take(&mut self, len: usize, tag: u32) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(len).filter(|&end| end <= self.buf.len()).ok_or(WireError::Truncated(tag))?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }
}

/// How a varint read failed, before the field is known.
enum VarintError {
    Truncated,
    TooLong,
}

impl VarintError {
    fn in_field(self, tag: u32) -> WireError {
        match self {
            VarintError::Truncated => WireError::Truncated(tag),
            VarintError::TooLong => WireError::Varint(tag),
        }
    }
}

fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, VarintError> {
    let mut value = 0u64;
    for i in 0..10 {
        let byte = *buf.get(*pos).ok_or(VarintError::Truncated)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(VarintError::TooLong)
}

/// The varints of a packed repeated field.
pub(super) fn packed_varints(bytes: &[u8], tag: u32) -> Result<Vec<u64>, WireError> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < bytes.len() {
        out.push(varint(bytes, &mut pos).map_err(|e| e.in_field(tag))?);
    }
    Ok(out)
}

/// Protobuf encoding, for the tests' hand-built messages.
#[cfg(test)]
pub(super) mod encode {
    pub fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn key(out: &mut Vec<u8>, tag: u32, wire_type: u8) {
        varint(out, (u64::from(tag) << 3) | u64::from(wire_type));
    }

    /// A message under construction.
    #[derive(Default, Clone)]
    pub struct Msg(pub Vec<u8>);

    impl Msg {
        pub fn new() -> Self {
            Msg::default()
        }
        pub fn int(mut self, tag: u32, v: i64) -> Self {
            key(&mut self.0, tag, 0);
            varint(&mut self.0, v as u64);
            self
        }
        pub fn bool(self, tag: u32, v: bool) -> Self {
            self.int(tag, i64::from(v))
        }
        pub fn bytes(mut self, tag: u32, v: &[u8]) -> Self {
            key(&mut self.0, tag, 2);
            varint(&mut self.0, v.len() as u64);
            self.0.extend_from_slice(v);
            self
        }
        pub fn str(self, tag: u32, v: &str) -> Self {
            self.bytes(tag, v.as_bytes())
        }
        pub fn msg(self, tag: u32, m: Msg) -> Self {
            self.bytes(tag, &m.0)
        }
        /// A map entry {1: key, 2: value}.
        pub fn entry(self, tag: u32, k: &str, v: &[u8]) -> Self {
            self.msg(tag, Msg::new().str(1, k).bytes(2, v))
        }
        pub fn fixed64(mut self, tag: u32, v: u64) -> Self {
            key(&mut self.0, tag, 1);
            self.0.extend_from_slice(&v.to_le_bytes());
            self
        }
        pub fn fixed32(mut self, tag: u32, v: u32) -> Self {
            key(&mut self.0, tag, 5);
            self.0.extend_from_slice(&v.to_le_bytes());
            self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::encode::Msg;
    use super::*;

    #[test]
    fn reads_every_wire_type() {
        let m = Msg::new().int(1, -1).fixed64(2, 7).str(3, "hi").fixed32(4, 9).int(536_870_911, 5);
        let mut f = Fields::new(&m.0);
        assert_eq!(f.next_field(), Ok(Some((1, Value::Varint(u64::MAX)))));
        assert_eq!(f.next_field(), Ok(Some((2, Value::Fixed64(7)))));
        assert_eq!(f.next_field(), Ok(Some((3, Value::Bytes(b"hi")))));
        assert_eq!(f.next_field(), Ok(Some((4, Value::Fixed32(9)))));
        assert_eq!(f.next_field(), Ok(Some((536_870_911, Value::Varint(5)))));
        assert_eq!(f.next_field(), Ok(None));
    }

    #[test]
    fn malformed_input_is_an_error() {
        let m = Msg::new().str(3, "hello");
        assert_eq!(Fields::new(&m.0[..4]).next_field(), Err(WireError::Truncated(3)));
        assert_eq!(Fields::new(&[0x08]).next_field(), Err(WireError::Truncated(1)));
        assert_eq!(Fields::new(&[0x80]).next_field(), Err(WireError::Truncated(0)));
        assert_eq!(
            Fields::new(&[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]).next_field(),
            Err(WireError::Varint(1))
        );
        assert_eq!(Fields::new(&[0x00]).next_field(), Err(WireError::BadTag(0)));
        assert_eq!(Fields::new(&[0x0b]).next_field(), Err(WireError::WireType { tag: 1, wire_type: 3 }));
        assert_eq!(Fields::new(&[0x0f]).next_field(), Err(WireError::WireType { tag: 1, wire_type: 7 }));
        // A length beyond the buffer, and one that overflows usize arithmetic.
        assert_eq!(Fields::new(&[0x12, 0x05, b'a']).next_field(), Err(WireError::Truncated(2)));
        let mut huge = vec![0x12];
        encode::varint(&mut huge, u64::MAX);
        assert_eq!(Fields::new(&huge).next_field(), Err(WireError::Truncated(2)));
        assert_eq!(packed_varints(&[0x01, 0x96, 0x01], 4).unwrap(), vec![1, 150]);
        assert_eq!(packed_varints(&[0x96], 4), Err(WireError::Truncated(4)));
    }
}
