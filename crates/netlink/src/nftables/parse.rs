//! Decoding what the kernel sends back: attributes, the objects of a listing (rules with their
//! handle and comment, chains, sets, set elements) and error answers (errno and the kernel's
//! extended-ack message). Pure: the socket side is [`super::NftSocket`].

use nix::errno::Errno;

use super::consts::*;
use super::msg::Verdict;

/// The attributes of a payload: (type without the nested and byte-order flags, value).
pub fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let ty = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
        if len < 4 || len > b.len() {
            break;
        }
        out.push((ty, &b[4..len]));
        b = &b[((len + 3) & !3).min(b.len())..];
    }
    out
}

/// A NUL-terminated string attribute.
pub fn c_string(b: &[u8]) -> String {
    String::from_utf8_lossy(b.split(|c| *c == 0).next().unwrap_or_default()).into_owned()
}

fn be_u32(v: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(v.try_into().ok()?))
}

/// A rule of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleInfo {
    /// Its family (`NFPROTO_*`).
    pub family: u8,
    /// Its table.
    pub table: String,
    /// Its chain.
    pub chain: String,
    /// Its handle.
    pub handle: u64,
    /// Its comment (libnftnl's user data); empty without one.
    pub comment: String,
}

/// A rule message's payload (after `nfgenmsg`); `None` without table, chain or handle.
pub fn parse_rule(family: u8, payload: &[u8]) -> Option<RuleInfo> {
    let (mut table, mut chain, mut handle, mut comment) = (None, None, None, String::new());
    for (ty, v) in attrs(payload) {
        match ty {
            NFTA_RULE_TABLE => table = Some(c_string(v)),
            NFTA_RULE_CHAIN => chain = Some(c_string(v)),
            NFTA_RULE_HANDLE if v.len() == 8 => handle = Some(u64::from_be_bytes(v.try_into().ok()?)),
            NFTA_RULE_USERDATA => comment = parse_comment(v).unwrap_or_default(),
            _ => {}
        }
    }
    Some(RuleInfo { family, table: table?, chain: chain?, handle: handle?, comment })
}

/// The comment in a rule's user data (type-length-value records of one byte each).
pub fn parse_comment(mut u: &[u8]) -> Option<String> {
    let mut out = None;
    while u.len() >= 2 {
        let (t, l) = (u[0], u[1] as usize);
        if 2 + l > u.len() {
            break;
        }
        if t == NFTNL_UDATA_RULE_COMMENT {
            out = Some(c_string(&u[2..2 + l]));
        }
        u = &u[2 + l..];
    }
    out
}

/// A chain message's payload: (table, name).
pub fn parse_chain(payload: &[u8]) -> Option<(String, String)> {
    let (mut table, mut name) = (None, None);
    for (ty, v) in attrs(payload) {
        match ty {
            NFTA_CHAIN_TABLE => table = Some(c_string(v)),
            NFTA_CHAIN_NAME => name = Some(c_string(v)),
            _ => {}
        }
    }
    Some((table?, name?))
}

/// A set of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetInfo {
    /// Its table.
    pub table: String,
    /// Its name.
    pub name: String,
    /// Its `NFT_SET_*` flags.
    pub flags: u32,
}

impl SetInfo {
    /// Whether it is anonymous (made for one rule).
    pub fn is_anonymous(&self) -> bool {
        self.flags & NFT_SET_ANONYMOUS != 0
    }

    /// Whether it is a map.
    pub fn is_map(&self) -> bool {
        self.flags & NFT_SET_MAP != 0
    }
}

/// A set message's payload.
pub fn parse_set(payload: &[u8]) -> Option<SetInfo> {
    let (mut table, mut name, mut flags) = (None, None, 0);
    for (ty, v) in attrs(payload) {
        match ty {
            NFTA_SET_TABLE => table = Some(c_string(v)),
            NFTA_SET_NAME => name = Some(c_string(v)),
            NFTA_SET_FLAGS => flags = be_u32(v).unwrap_or(0),
            _ => {}
        }
    }
    Some(SetInfo { table: table?, name: name?, flags })
}

/// A set element of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetElem {
    /// The key's bytes.
    pub key: Vec<u8>,
    /// A verdict map element's verdict.
    pub verdict: Option<Verdict>,
    /// A data map element's value.
    pub data: Option<Vec<u8>>,
    /// `NFT_SET_ELEM_*` flags.
    pub flags: u32,
}

/// One `NFTA_LIST_ELEM` of a set element message; `None` without a key.
pub fn parse_elem(elem: &[u8]) -> Option<SetElem> {
    let (mut key, mut verdict, mut data, mut flags) = (None, None, None, 0);
    for (ty, v) in attrs(elem) {
        match ty {
            NFTA_SET_ELEM_KEY => {
                key = attrs(v).into_iter().find(|(t, _)| *t == NFTA_DATA_VALUE).map(|(_, d)| d.to_vec())
            }
            NFTA_SET_ELEM_DATA => {
                data = attrs(v).into_iter().find(|(t, _)| *t == NFTA_DATA_VALUE).map(|(_, d)| d.to_vec());
                if let Some((_, vd)) = attrs(v).into_iter().find(|(t, _)| *t == NFTA_DATA_VERDICT) {
                    let (mut code, mut chain) = (None, None);
                    for (t, d) in attrs(vd) {
                        match t {
                            NFTA_VERDICT_CODE => code = be_u32(d).map(|c| c as i32),
                            NFTA_VERDICT_CHAIN => chain = Some(c_string(d)),
                            _ => {}
                        }
                    }
                    verdict = code.map(|c| Verdict::from_code(c, chain));
                }
            }
            NFTA_SET_ELEM_FLAGS => flags = be_u32(v).unwrap_or(0),
            _ => {}
        }
    }
    Some(SetElem { key: key?, verdict, data, flags })
}

/// The elements of a set element message's payload (`None` for one that cannot be read).
pub fn parse_elems(payload: &[u8]) -> Vec<Option<SetElem>> {
    attrs(payload)
        .into_iter()
        .filter(|(ty, _)| *ty == NFTA_SET_ELEM_LIST_ELEMENTS)
        .flat_map(|(_, list)| attrs(list).into_iter().map(|(_, e)| parse_elem(e)))
        .collect()
}

/// The errno and extended-ack message of an error answer: `code` (negative), the answer's
/// flags and what follows the code (the echoed request, then the extended-ack attributes).
pub fn error_answer(code: i32, flags: u16, rest: &[u8]) -> (Errno, Option<String>) {
    let errno = Errno::from_raw(code.abs());
    let mut message = None;
    if flags & NLM_F_ACK_TLVS != 0 && rest.len() >= 16 {
        let req_len = if flags & NLM_F_CAPPED != 0 {
            16
        } else {
            u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize
        };
        if let Some(tlvs) = rest.get(((req_len + 3) & !3)..) {
            // NLMSGERR_ATTR_MSG
            message = attrs(tlvs).into_iter().find(|(t, _)| *t == 1).map(|(_, m)| c_string(m));
        }
    }
    (errno, message)
}

#[cfg(test)]
mod tests {
    use super::super::msg::{MsgBuf, SetRef};
    use super::*;

    #[test]
    fn rules_read_back_with_handle_and_comment() {
        let mut exprs = MsgBuf::new();
        exprs.masq(None);
        let mut m = MsgBuf::new();
        m.new_rule(7, FAMILY_INET, "podnet_masq", "postrouting", &exprs, "podnet:x:y");
        let mut back = m.as_bytes()[20..].to_vec();
        let mut h = MsgBuf::new();
        h.u64(NFTA_RULE_HANDLE, 42);
        back.extend_from_slice(h.as_bytes());
        let r = parse_rule(FAMILY_INET, &back).unwrap();
        assert_eq!(
            (r.table.as_str(), r.chain.as_str(), r.handle, r.comment.as_str()),
            ("podnet_masq", "postrouting", 42, "podnet:x:y")
        );
        assert!(parse_rule(FAMILY_INET, &m.as_bytes()[20..]).is_none(), "no handle");
    }

    #[test]
    fn elements_read_back_as_written() {
        let mut m = MsgBuf::new();
        m.set_elems::<()>(1, FAMILY_IPV4, "t", SetRef::Name("m"), true, 2, |b, i| {
            b.value(NFTA_SET_ELEM_KEY, &[10, 0, 0, i as u8]);
            if i == 0 {
                b.verdict_code(NFTA_SET_ELEM_DATA, NFT_GOTO, Some("service-X"));
            } else {
                b.verdict(NFTA_SET_ELEM_DATA, &Verdict::Drop);
            }
            Ok(())
        })
        .unwrap();
        let elems = parse_elems(&m.as_bytes()[20..]);
        assert_eq!(
            elems,
            [
                Some(SetElem {
                    key: vec![10, 0, 0, 0],
                    verdict: Some(Verdict::Goto("service-X".into())),
                    data: None,
                    flags: 0
                }),
                Some(SetElem { key: vec![10, 0, 0, 1], verdict: Some(Verdict::Drop), data: None, flags: 0 }),
            ]
        );
    }

    #[test]
    fn sets_and_chains() {
        let mut m = MsgBuf::new();
        m.new_chain(1, FAMILY_IPV4, "t", "c", None);
        assert_eq!(parse_chain(&m.as_bytes()[20..]), Some(("t".into(), "c".into())));
        let mut m = MsgBuf::new();
        let spec = super::super::msg::SetSpec {
            table: "t",
            name: "s",
            flags: NFT_SET_MAP,
            key_type: TYPE_IPADDR,
            key_len: 4,
            data: Some((NFT_DATA_VERDICT, 0)),
            id: 1,
            timeout_ms: None,
            size: None,
            userdata: &[],
        };
        m.new_set(1, FAMILY_IPV4, &spec);
        let s = parse_set(&m.as_bytes()[20..]).unwrap();
        assert!(s.is_map() && !s.is_anonymous());
        assert_eq!(s.name, "s");
    }

    #[test]
    fn error_answers() {
        assert_eq!(error_answer(-2, 0, &[]), (Errno::ENOENT, None));
        let mut rest = vec![0u8; 16];
        let mut tlv = MsgBuf::new();
        tlv.str(1, "Unknown chain");
        rest.extend_from_slice(tlv.as_bytes());
        assert_eq!(
            error_answer(-2, NLM_F_ACK_TLVS | NLM_F_CAPPED, &rest),
            (Errno::ENOENT, Some("Unknown chain".into()))
        );
    }
}
