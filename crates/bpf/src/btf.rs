//! A reader of BTF, the BPF Type Format the kernel describes itself in
//! (`/sys/kernel/btf/vmlinux`): enough of it to find a kernel function's type id (to call it as
//! a kfunc), a struct's size, and a member's byte offset — what a program needs to be built for
//! the running kernel rather than for the headers it was compiled against.
//!
//! The format (Documentation/bpf/btf.rst): a header, then a section of types — each a 12-byte
//! `btf_type` (name offset, info word with kind and member count, size or type) followed by
//! kind-specific data — and a section of NUL-terminated strings. Type ids count from 1 in
//! section order.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Where the running kernel publishes its BTF.
pub const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

const MAGIC: u16 = 0xeb9f;

/// The kinds this reader looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Struct,
    Func,
}

impl Kind {
    fn code(self) -> u32 {
        match self {
            Kind::Struct => 4,
            Kind::Func => 12,
        }
    }
}

/// A parsed BTF blob: the types' positions, the raw types and strings.
pub struct Btf {
    path: PathBuf,
    types: Vec<u8>,
    strings: Vec<u8>,
    /// Byte offset in `types` of type id `i + 1`.
    offsets: Vec<u32>,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

impl std::fmt::Debug for Btf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Btf({}, {} types)", self.path.display(), self.offsets.len())
    }
}

impl Btf {
    /// Reads the running kernel's BTF.
    pub fn vmlinux() -> Result<Btf> {
        Btf::read(Path::new(VMLINUX))
    }

    /// Reads and parses the BTF file at `path`.
    pub fn read(path: &Path) -> Result<Btf> {
        let data = std::fs::read(path).map_err(|e| Error::Fs {
            path: path.into(),
            what: "reading BTF (does the kernel have CONFIG_DEBUG_INFO_BTF?)",
            errno: nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        })?;
        Btf::parse(path, &data)
    }

    /// Parses a BTF blob (little-endian, as on the machines podnet runs on); `path` names it in
    /// errors.
    pub fn parse(path: &Path, data: &[u8]) -> Result<Btf> {
        let bad = |what: &str| Error::Btf { path: path.into(), what: what.to_string() };
        if data.len() < 24 || u16::from_le_bytes([data[0], data[1]]) != MAGIC {
            return Err(bad("not little-endian BTF (bad magic)"));
        }
        let hdr_len = u32_at(data, 4).ok_or_else(|| bad("short header"))? as usize;
        let field = |i: usize| u32_at(data, 8 + 4 * i).map(|v| v as usize).ok_or_else(|| bad("short header"));
        let (type_off, type_len, str_off, str_len) = (field(0)?, field(1)?, field(2)?, field(3)?);
        let section = |off: usize, len: usize| {
            data.get(hdr_len + off..hdr_len + off + len).map(<[u8]>::to_vec).ok_or_else(|| bad("section out of bounds"))
        };
        let types = section(type_off, type_len)?;
        let strings = section(str_off, str_len)?;
        let mut offsets = Vec::new();
        let mut at = 0usize;
        while at < types.len() {
            let info = u32_at(&types, at + 4).ok_or_else(|| bad("truncated type"))?;
            let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
            let extra = match kind {
                1 | 14 | 17 => 4,             // INT, VAR, DECL_TAG
                3 => 12,                      // ARRAY
                4 | 5 | 15 | 19 => 12 * vlen, // STRUCT, UNION, DATASEC, ENUM64
                6 | 13 => 8 * vlen,           // ENUM, FUNC_PROTO
                2 | 7..=12 | 16 | 18 => 0,    // PTR, FWD, TYPEDEF, modifiers, FUNC, FLOAT, TYPE_TAG
                k => return Err(bad(&format!("unknown type kind {k} at type id {}", offsets.len() + 1))),
            };
            offsets.push(at as u32);
            at += 12 + extra;
        }
        if at != types.len() {
            return Err(bad("the type section ends inside a type"));
        }
        Ok(Btf { path: path.into(), types, strings, offsets })
    }

    /// The number of types.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// Whether there are no types.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    fn name(&self, off: u32) -> &[u8] {
        let rest = self.strings.get(off as usize..).unwrap_or_default();
        &rest[..rest.iter().position(|b| *b == 0).unwrap_or(rest.len())]
    }

    /// (name offset, kind, member count, size or type, byte offset of its extra data).
    fn entry(&self, id: u32) -> (u32, u32, usize, u32, usize) {
        let at = self.offsets[id as usize - 1] as usize;
        let word = |i: usize| u32_at(&self.types, at + 4 * i).expect("checked when parsed");
        let info = word(1);
        (word(0), (info >> 24) & 0x1f, (info & 0xffff) as usize, word(2), at + 12)
    }

    /// The id of the type of `kind` named `name`.
    pub fn find(&self, kind: Kind, name: &str) -> Result<u32> {
        (1..=self.offsets.len() as u32)
            .find(|id| {
                let (name_off, k, ..) = self.entry(*id);
                k == kind.code() && self.name(name_off) == name.as_bytes()
            })
            .ok_or_else(|| self.missing(kind, name))
    }

    fn missing(&self, kind: Kind, name: &str) -> Error {
        Error::Btf { path: self.path.clone(), what: format!("no {kind:?} named {name}") }
    }

    /// The size in bytes of struct `name`.
    pub fn struct_size(&self, name: &str) -> Result<u32> {
        let id = self.find(Kind::Struct, name)?;
        Ok(self.entry(id).3)
    }

    /// The byte offset of `member` in struct `name` (which must not be a bit field).
    pub fn member_offset(&self, name: &str, member: &str) -> Result<u32> {
        let id = self.find(Kind::Struct, name)?;
        let at = self.offsets[id as usize - 1] as usize;
        let kind_flag = u32_at(&self.types, at + 4).expect("parsed") >> 31 == 1;
        let (_, _, vlen, _, extra) = self.entry(id);
        for i in 0..vlen {
            let m = extra + 12 * i;
            let (name_off, offset) =
                (u32_at(&self.types, m).expect("parsed"), u32_at(&self.types, m + 8).expect("parsed"));
            if self.name(name_off) == member.as_bytes() {
                // With kind_flag set the offset word holds the bit field size in its top byte.
                let bits = if kind_flag { offset & 0x00ff_ffff } else { offset };
                if bits % 8 != 0 {
                    return Err(Error::Btf {
                        path: self.path.clone(),
                        what: format!("{name}.{member} is a bit field (bit offset {bits})"),
                    });
                }
                return Ok(bits / 8);
            }
        }
        Err(Error::Btf { path: self.path.clone(), what: format!("struct {name} has no member {member}") })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob with: 1 INT "int" (4 bytes), 2 STRUCT "pair" { a: int @0, b: int @32 },
    /// 3 FUNC_PROTO (one param), 4 FUNC "f".
    fn sample() -> Vec<u8> {
        let strings = b"\0int\0pair\0a\0b\0f\0x\0".to_vec();
        let off = |s: &str| {
            let needle: Vec<u8> = [b"\0".as_slice(), s.as_bytes(), b"\0"].concat();
            strings.windows(needle.len()).position(|w| w == needle.as_slice()).unwrap() as u32 + 1
        };
        let mut t = Vec::new();
        let mut put = |words: &[u32]| words.iter().for_each(|w| t.extend_from_slice(&w.to_le_bytes()));
        put(&[off("int"), 1 << 24, 4, (1 << 24) | 32]);
        put(&[off("pair"), (4 << 24) | 2, 8]);
        put(&[off("a"), 1, 0]);
        put(&[off("b"), 1, 32]);
        put(&[0, (13 << 24) | 1, 1]);
        put(&[off("x"), 1]);
        put(&[off("f"), 12 << 24, 3]);
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&[1, 0]);
        for w in [24u32, 0, t.len() as u32, t.len() as u32, strings.len() as u32] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(&t);
        out.extend_from_slice(&strings);
        out
    }

    #[test]
    fn finds_functions_structs_and_members() {
        let btf = Btf::parse(Path::new("sample"), &sample()).unwrap();
        assert_eq!(btf.len(), 4);
        assert_eq!(btf.find(Kind::Func, "f").unwrap(), 4);
        assert_eq!(btf.find(Kind::Struct, "pair").unwrap(), 2);
        assert_eq!(btf.struct_size("pair").unwrap(), 8);
        assert_eq!(btf.member_offset("pair", "b").unwrap(), 4);
        let e = btf.member_offset("pair", "c").unwrap_err().to_string();
        assert!(e.contains("struct pair has no member c"), "{e}");
        assert!(btf.find(Kind::Func, "int").is_err(), "an INT is not a FUNC");
    }

    #[test]
    fn rejects_what_is_not_btf() {
        let mut blob = sample();
        blob[0] = 0;
        assert!(Btf::parse(Path::new("x"), &blob).unwrap_err().to_string().contains("bad magic"));
        let mut cut = sample();
        let n = cut.len();
        cut.truncate(n - 30);
        assert!(Btf::parse(Path::new("x"), &cut).is_err());
    }

    #[test]
    fn reads_the_running_kernels_btf() {
        let Ok(btf) = Btf::vmlinux() else {
            eprintln!("no {VMLINUX}: the kernel has no BTF");
            return;
        };
        assert!(btf.len() > 1000);
        assert!(btf.find(Kind::Func, "bpf_skb_ct_lookup").is_ok());
        assert!(btf.member_offset("nf_conn", "status").unwrap() > 0);
        assert!(btf.struct_size("bpf_ct_opts").unwrap() >= 12);
    }
}
