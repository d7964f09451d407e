//! `log`: one line per query, in CoreDNS's formats (`{common}`: `{remote}:{port} - {>id} "{type}
//! {class} {name} {proto} {size} {>do} {>bufsize}" {rcode} {>rflags} {rsize} {duration}`), for
//! the names and response classes configured. The formatting is pure ([`format_entry`]).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_proto::op::Message;

use super::response::{self, ResponseClass};
use crate::corefile::{names, LogOptions};
use crate::{BoxFuture, Handler, Next, Request, Transport};

/// CoreDNS's common log format.
pub const COMMON_FORMAT: &str = "{remote}:{port} - {>id} \"{type} {class} {name} {proto} {size} {>do} {>bufsize}\" {rcode} {>rflags} {rsize} {duration}";
/// CoreDNS's combined log format.
pub const COMBINED_FORMAT: &str = "{remote}:{port} - {>id} \"{type} {class} {name} {proto} {size} {>do} {>bufsize}\" {rcode} {>rflags} {rsize} {duration} \"{>opcode}\"";

/// What one log line can show.
pub struct Entry<'a> {
    pub client: SocketAddr,
    pub transport: Transport,
    pub request: &'a Message,
    pub request_size: usize,
    pub response: &'a Message,
    pub response_size: usize,
    pub duration: Duration,
}

fn flags(m: &Message) -> String {
    let mut f = Vec::new();
    let h = m.header();
    for (on, name) in [
        (h.message_type() == hickory_proto::op::MessageType::Response, "qr"),
        (h.authoritative(), "aa"),
        (h.truncated(), "tc"),
        (h.recursion_desired(), "rd"),
        (h.recursion_available(), "ra"),
        (h.authentic_data(), "ad"),
        (h.checking_disabled(), "cd"),
    ] {
        if on {
            f.push(name);
        }
    }
    f.join(",")
}

/// Fills `format`'s placeholders from `e` (unknown ones print `-`).
pub fn format_entry(format: &str, e: &Entry) -> String {
    let format = match format {
        "{common}" => COMMON_FORMAT,
        "{combined}" => COMBINED_FORMAT,
        f => f,
    };
    let q = e.request.query();
    let mut out = String::with_capacity(format.len() + 64);
    let mut rest = format;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let key = &rest[start + 1..start + len];
        let value = match key {
            "remote" => match e.client.ip() {
                std::net::IpAddr::V6(ip) => format!("[{ip}]"),
                ip => ip.to_string(),
            },
            "port" => e.client.port().to_string(),
            ">id" => e.request.id().to_string(),
            "type" => q.map_or("-".into(), |q| q.query_type().to_string()),
            "class" => q.map_or("-".into(), |q| q.query_class().to_string()),
            "name" => q.map_or("-".into(), |q| q.name().to_ascii()),
            "proto" => match e.transport {
                Transport::Udp => "udp".into(),
                Transport::Tcp => "tcp".into(),
            },
            "size" => e.request_size.to_string(),
            ">do" => response::dnssec_ok(e.request).to_string(),
            ">bufsize" => e.request.max_payload().max(512).to_string(),
            "rcode" => response::rcode_name(e.response.response_code()).into_owned(),
            ">rflags" => flags(e.response),
            "rsize" => e.response_size.to_string(),
            "duration" => format!("{}s", e.duration.as_secs_f64()),
            ">opcode" => format!("{:?}", e.request.op_code()).to_uppercase(),
            _ => "-".into(),
        };
        out.push_str(&value);
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    out
}

/// The `log` plugin.
pub struct LogPlugin {
    options: LogOptions,
    names: Vec<String>,
}

impl LogPlugin {
    /// A `log` for `options`, its names defaulting to the block's `zones`.
    pub fn new(options: LogOptions, zones: &[String]) -> Self {
        let names = if options.names.is_empty() { zones.to_vec() } else { options.names.clone() };
        LogPlugin { options, names }
    }

    fn wanted(&self, req: &Request, resp: &Message) -> bool {
        let Some(qname) = response::qname(req) else {
            return false;
        };
        if names::matching_zone(&qname, &self.names).is_none() {
            return false;
        }
        let c = self.options.classes;
        match response::classify(response::typify(resp)) {
            ResponseClass::Success => c.success,
            ResponseClass::Denial => c.denial,
            ResponseClass::Error => c.error,
        }
    }
}

impl Handler for LogPlugin {
    fn name(&self) -> &'static str {
        "log"
    }

    fn handle<'a>(&'a self, req: &'a Request, next: Next<'a>) -> BoxFuture<'a, Message> {
        Box::pin(async move {
            let start = Instant::now();
            let resp = next.run(req).await;
            if self.wanted(req, &resp) {
                let size = |m: &Message| m.to_vec().map_or(0, |v| v.len());
                let line = format_entry(
                    &self.options.format,
                    &Entry {
                        client: req.client,
                        transport: req.transport,
                        request: &req.message,
                        request_size: size(&req.message),
                        response: &resp,
                        response_size: size(&resp),
                        duration: start.elapsed(),
                    },
                );
                tracing::info!(target: "podnet_dns::log", "{line}");
            }
            resp
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{MessageType, Query, ResponseCode};
    use hickory_proto::rr::{Name, RecordType};

    #[test]
    fn common_format() {
        let mut req = Message::new();
        req.set_id(4632).set_recursion_desired(true);
        req.add_query(Query::query(Name::from_ascii("example.org.").unwrap(), RecordType::A));
        let mut resp = req.clone();
        resp.set_message_type(MessageType::Response)
            .set_recursion_available(true)
            .set_response_code(ResponseCode::NXDomain);
        let e = Entry {
            client: "10.244.0.1:53321".parse().unwrap(),
            transport: Transport::Udp,
            request: &req,
            request_size: 29,
            response: &resp,
            response_size: 74,
            duration: Duration::from_millis(20),
        };
        assert_eq!(
            format_entry("{common}", &e),
            "10.244.0.1:53321 - 4632 \"A IN example.org. udp 29 false 512\" NXDOMAIN qr,rd,ra 74 0.02s"
        );
        assert_eq!(format_entry("{name} {nope} {", &e), "example.org. - {");
    }
}
