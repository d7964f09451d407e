//! Typed reads of JSON configuration fields whose errors name the field by its path
//! (`ipam.ranges[0][1].subnet: expected a string, got 12`), so a bad configuration is reported
//! precisely as error code 7.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde_json::{Map, Value};

use crate::error::{CniError, CniResult};

/// A JSON object and the path it was found at (empty for the top level).
#[derive(Debug, Clone)]
pub struct Obj<'a> {
    pub path: String,
    pub map: &'a Map<String, Value>,
}

/// `path.key`, or `key` at the top level.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn describe(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        format!("{}…", &s[..s.char_indices().nth(57).map(|(i, _)| i).unwrap_or(s.len())])
    } else {
        s
    }
}

/// An error naming the field at `path`.
pub fn invalid(path: &str, what: impl std::fmt::Display) -> CniError {
    CniError::InvalidConfig(format!("{path}: {what}"))
}

impl<'a> Obj<'a> {
    /// The top-level object of a configuration.
    pub fn root(v: &'a Value) -> CniResult<Obj<'a>> {
        match v {
            Value::Object(map) => Ok(Obj { path: String::new(), map }),
            other => Err(CniError::InvalidConfig(format!(
                "the network configuration must be a JSON object, got {}",
                describe(other)
            ))),
        }
    }

    /// `v` as an object found at `path`.
    pub fn at(path: String, v: &'a Value) -> CniResult<Obj<'a>> {
        match v {
            Value::Object(map) => Ok(Obj { path, map }),
            other => Err(invalid(&path, format!("expected an object, got {}", describe(other)))),
        }
    }

    /// The value of `key`; a JSON `null` counts as absent.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn wrong(&self, key: &str, expected: &str, got: &Value) -> CniError {
        invalid(&join(&self.path, key), format!("expected {expected}, got {}", describe(got)))
    }

    pub fn str(&self, key: &str) -> CniResult<Option<&'a str>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.wrong(key, "a string", v)),
        }
    }

    pub fn bool(&self, key: &str) -> CniResult<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.wrong(key, "true or false", v)),
        }
    }

    /// A non-negative integer no larger than `max`.
    pub fn uint(&self, key: &str, max: u64) -> CniResult<Option<u64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if n <= max => Ok(Some(n)),
                _ => Err(self.wrong(key, &format!("an integer between 0 and {max}"), v)),
            },
        }
    }

    /// A signed integer.
    pub fn int(&self, key: &str) -> CniResult<Option<i64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_i64().map(Some).ok_or_else(|| self.wrong(key, "an integer", v)),
        }
    }

    pub fn obj(&self, key: &str) -> CniResult<Option<Obj<'a>>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Obj { path: join(&self.path, key), map })),
            Some(v) => Err(self.wrong(key, "an object", v)),
        }
    }

    /// The path of `key` in this object.
    pub fn path_of(&self, key: &str) -> String {
        join(&self.path, key)
    }

    pub fn array(&self, key: &str) -> CniResult<Option<&'a Vec<Value>>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(v) => Err(self.wrong(key, "a list", v)),
        }
    }

    /// A string parsed with `FromStr` (addresses, prefixes), the error naming what was expected.
    pub fn parsed<T: FromStr>(&self, key: &str, what: &str) -> CniResult<Option<T>> {
        match self.str(key)? {
            None => Ok(None),
            Some(s) => {
                s.trim().parse().map(Some).map_err(|_| invalid(&join(&self.path, key), format!("{s:?} is not {what}")))
            }
        }
    }

    pub fn ip(&self, key: &str) -> CniResult<Option<IpAddr>> {
        self.parsed(key, "an IP address")
    }

    pub fn cidr(&self, key: &str) -> CniResult<Option<IpNet>> {
        self.parsed(key, "a CIDR (address/prefix length)")
    }

    /// A list of strings.
    pub fn strings(&self, key: &str) -> CniResult<Vec<String>> {
        let Some(items) = self.array(key)? else { return Ok(Vec::new()) };
        items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(invalid(
                    &format!("{}[{i}]", join(&self.path, key)),
                    format!("expected a string, got {}", describe(other)),
                )),
            })
            .collect()
    }
}

/// Parses an IP address given either bare or in CIDR form (`10.1.2.3` or `10.1.2.3/24`).
pub fn ip_or_cidr(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    s.parse::<IpAddr>().ok().or_else(|| s.parse::<IpNet>().ok().map(|n| n.addr()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn errors_name_the_field() {
        let v = json!({"mtu": "big", "ipam": {"subnet": 12, "gateway": "10.0.0.300"}, "flag": 1, "list": [1]});
        let root = Obj::root(&v).unwrap();
        assert_eq!(
            root.uint("mtu", 65535).unwrap_err().to_string(),
            "mtu: expected an integer between 0 and 65535, got \"big\""
        );
        assert_eq!(root.bool("flag").unwrap_err().to_string(), "flag: expected true or false, got 1");
        let ipam = root.obj("ipam").unwrap().unwrap();
        assert_eq!(ipam.str("subnet").unwrap_err().to_string(), "ipam.subnet: expected a string, got 12");
        assert_eq!(ipam.ip("gateway").unwrap_err().to_string(), "ipam.gateway: \"10.0.0.300\" is not an IP address");
        assert_eq!(root.strings("list").unwrap_err().to_string(), "list[0]: expected a string, got 1");
        assert_eq!(root.str("absent").unwrap(), None);
        assert_eq!(Obj::root(&json!([1])).unwrap_err().code(), 7);
    }

    #[test]
    fn ip_forms() {
        assert_eq!(ip_or_cidr("10.1.2.3"), Some("10.1.2.3".parse().unwrap()));
        assert_eq!(ip_or_cidr("10.1.2.3/24"), Some("10.1.2.3".parse().unwrap()));
        assert_eq!(ip_or_cidr("fd00::3/64"), Some("fd00::3".parse().unwrap()));
        assert_eq!(ip_or_cidr("x"), None);
    }
}
