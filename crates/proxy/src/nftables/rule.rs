//! One nftables rule of the proxy as data: a few matches and one statement, exactly the shapes
//! the proxy writes. [`Rule`]'s `Display` is the rule's `nft` text (what `nft -f` is given and
//! what the scripts hold); [`super::netlink`] encodes the same rule as the expressions `nft` 1.0
//! generates for that text, so either way the kernel holds the same rule and `nft list` shows the
//! same thing.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use super::family::Family;
use crate::model::Protocol;

/// One element of an anonymous address set: an address or a prefix (`10.0.0.0/8`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SetItem {
    Addr(IpAddr),
    Net(IpNet),
}

impl fmt::Display for SetItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetItem::Addr(a) => a.fmt(f),
            SetItem::Net(n) => n.fmt(f),
        }
    }
}

/// What an address is compared with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AddrValue {
    /// `10.244.1.5`.
    One(IpAddr),
    /// `127.0.0.0/8`.
    Prefix(IpNet),
    /// `{ 10.244.0.0/16, 192.0.2.1 }`: an anonymous set (one element is compared directly, as
    /// `nft` does).
    Set(Vec<SetItem>),
    /// `@nodeport-ips`: a named set of the table.
    Named(String),
}

impl fmt::Display for AddrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddrValue::One(a) => a.fmt(f),
            AddrValue::Prefix(n) => n.fmt(f),
            AddrValue::Set(items) => {
                let items: Vec<String> = items.iter().map(ToString::to_string).collect();
                write!(f, "{{ {} }}", items.join(", "))
            }
            AddrValue::Named(name) => write!(f, "@{name}"),
        }
    }
}

/// A match: the rule goes on only if it holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Match {
    /// `ip saddr 10.0.0.1`, `ip6 daddr != { … }`, `ip daddr @set`.
    Addr { family: Family, source: bool, negate: bool, value: AddrValue },
    /// `tcp dport 80`.
    Dport { proto: Protocol, port: u16 },
    /// `meta l4proto tcp`.
    L4proto(Protocol),
    /// `ct state new`.
    CtStateNew,
    /// `ct status dnat`: the connection's destination was translated.
    CtStatusDnat,
    /// `fib saddr type local` (`source`) or `fib daddr type local`.
    FibLocal { source: bool },
    /// `mark and 0x00004000 == 0`.
    MarkClear(u32),
    /// `numgen random mod N 0`: holds for one packet in N, at random.
    OneIn(u32),
    /// `ip saddr . ip daddr @set`: the pair is in the set (hairpin: a set of `a . a`).
    AddrPairIn { family: Family, set: String },
}

impl fmt::Display for Match {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Match::Addr { family, source, negate, value } => {
                let dir = if *source { "saddr" } else { "daddr" };
                let op = if *negate { "!= " } else { "" };
                write!(f, "{} {dir} {op}{value}", family.nft())
            }
            Match::Dport { proto, port } => write!(f, "{} dport {port}", proto.as_lower()),
            Match::L4proto(proto) => write!(f, "meta l4proto {}", proto.as_lower()),
            Match::CtStateNew => f.write_str("ct state new"),
            Match::CtStatusDnat => f.write_str("ct status dnat"),
            Match::FibLocal { source } => write!(f, "fib {} type local", if *source { "saddr" } else { "daddr" }),
            Match::MarkClear(mark) => write!(f, "mark and {mark:#010x} == 0"),
            Match::OneIn(n) => write!(f, "numgen random mod {n} 0"),
            Match::AddrPairIn { family, set } => write!(f, "{0} saddr . {0} daddr @{set}", family.nft()),
        }
    }
}

/// A verdict.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Verdict {
    Jump(String),
    Goto(String),
    Return,
    Drop,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Jump(c) => write!(f, "jump {c}"),
            Verdict::Goto(c) => write!(f, "goto {c}"),
            Verdict::Return => f.write_str("return"),
            Verdict::Drop => f.write_str("drop"),
        }
    }
}

/// What a rule does once its matches hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Stmt {
    Verdict(Verdict),
    /// `ip daddr . meta l4proto . th dport vmap @map`.
    DispatchAddr {
        family: Family,
        map: String,
    },
    /// `meta l4proto . th dport vmap @map`.
    DispatchPort {
        map: String,
    },
    /// `mark set mark or 0x00004000`.
    MarkOr(u32),
    /// `mark set mark xor 0x00004000`.
    MarkXor(u32),
    /// `masquerade fully-random`.
    MasqueradeFullyRandom,
    /// `reject with tcp reset`.
    RejectTcpReset,
    /// `reject` (ICMP port unreachable).
    Reject,
    /// `dnat to 10.244.1.5:8080` (`[fd00::5]:8080`).
    Dnat(SocketAddr),
    /// `dnat ip to numgen random mod N offset O map @endpoints-…`: one of the N endpoints at
    /// keys O … O+N−1 of an endpoint map, at random.
    DnatRandom {
        family: Family,
        modulus: u32,
        offset: u32,
        map: String,
    },
    /// `update @set { ip saddr }`.
    UpdateSaddr {
        family: Family,
        set: String,
    },
}

impl fmt::Display for Stmt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stmt::Verdict(v) => v.fmt(f),
            Stmt::DispatchAddr { family, map } => {
                write!(f, "{} daddr . meta l4proto . th dport vmap @{map}", family.nft())
            }
            Stmt::DispatchPort { map } => write!(f, "meta l4proto . th dport vmap @{map}"),
            Stmt::MarkOr(mark) => write!(f, "mark set mark or {mark:#010x}"),
            Stmt::MarkXor(mark) => write!(f, "mark set mark xor {mark:#010x}"),
            Stmt::MasqueradeFullyRandom => f.write_str("masquerade fully-random"),
            Stmt::RejectTcpReset => f.write_str("reject with tcp reset"),
            Stmt::Reject => f.write_str("reject"),
            Stmt::Dnat(to) => write!(f, "dnat to {to}"),
            Stmt::DnatRandom { family, modulus, offset, map } => {
                write!(f, "dnat {} to numgen random mod {modulus}", family.nft())?;
                if *offset != 0 {
                    write!(f, " offset {offset}")?;
                }
                write!(f, " map @{map}")
            }
            Stmt::UpdateSaddr { family, set } => write!(f, "update @{set} {{ {} saddr }}", family.nft()),
        }
    }
}

/// A rule: its matches, then its statement.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    pub matches: Vec<Match>,
    pub stmt: Stmt,
}

impl Rule {
    /// A rule of matches and a statement.
    pub fn new(matches: Vec<Match>, stmt: Stmt) -> Rule {
        Rule { matches, stmt }
    }

    /// A rule of only a statement.
    pub fn stmt(stmt: Stmt) -> Rule {
        Rule { matches: Vec::new(), stmt }
    }

    /// A rule of matches and a verdict.
    pub fn verdict(matches: Vec<Match>, verdict: Verdict) -> Rule {
        Rule { matches, stmt: Stmt::Verdict(verdict) }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for m in &self.matches {
            write!(f, "{m} ")?;
        }
        self.stmt.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_nft_syntax() {
        let cidrs = AddrValue::Set(vec![SetItem::Net("10.244.0.0/16".parse().unwrap())]);
        let masq = Rule::verdict(
            vec![
                Match::Addr {
                    family: Family::Ipv4,
                    source: false,
                    negate: false,
                    value: AddrValue::One("10.96.0.20".parse().unwrap()),
                },
                Match::Dport { proto: Protocol::Tcp, port: 80 },
                Match::Addr { family: Family::Ipv4, source: true, negate: true, value: cidrs },
            ],
            Verdict::Jump("mark-for-masquerade".into()),
        );
        assert_eq!(
            masq.to_string(),
            "ip daddr 10.96.0.20 tcp dport 80 ip saddr != { 10.244.0.0/16 } jump mark-for-masquerade"
        );
        assert_eq!(
            Rule::verdict(vec![Match::OneIn(2)], Verdict::Goto("a".into())).to_string(),
            "numgen random mod 2 0 goto a"
        );
        assert_eq!(
            Rule::verdict(vec![Match::MarkClear(0x4000)], Verdict::Return).to_string(),
            "mark and 0x00004000 == 0 return"
        );
        assert_eq!(Rule::stmt(Stmt::MarkOr(0x4000)).to_string(), "mark set mark or 0x00004000");
        let dnat = Rule::new(vec![Match::L4proto(Protocol::Udp)], Stmt::Dnat("[fd00::5]:53".parse().unwrap()));
        assert_eq!(dnat.to_string(), "meta l4proto udp dnat to [fd00::5]:53");
        assert_eq!(
            Rule::stmt(Stmt::UpdateSaddr { family: Family::Ipv6, set: "s".into() }).to_string(),
            "update @s { ip6 saddr }"
        );
        let random = |offset| Stmt::DnatRandom { family: Family::Ipv4, modulus: 3, offset, map: "m".into() };
        assert_eq!(
            Rule::new(vec![Match::L4proto(Protocol::Tcp)], random(65536)).to_string(),
            "meta l4proto tcp dnat ip to numgen random mod 3 offset 65536 map @m"
        );
        assert_eq!(Rule::stmt(random(0)).to_string(), "dnat ip to numgen random mod 3 map @m");
        let hairpin = Match::AddrPairIn { family: Family::Ipv6, set: "hairpin".into() };
        assert_eq!(
            Rule::verdict(vec![hairpin], Verdict::Jump("j".into())).to_string(),
            "ip6 saddr . ip6 daddr @hairpin jump j"
        );
    }
}
