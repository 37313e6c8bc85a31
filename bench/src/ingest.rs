//! The bodies of `ingest` mode: Loki `PushRequest` (protobuf, snappy
//! block-compressed), OTLP `ExportLogsServiceRequest` (protobuf) and RFC
//! 5424 syslog messages, octet-counted.
//!
//! The protobuf messages are declared here with `prost` derive, only the
//! fields this tool sends; their field numbers are those of Loki's
//! `pkg/push/push.proto` and OpenTelemetry's `logs.proto`, `common.proto`
//! and `resource.proto` (the server declares the same in
//! `src/ingest/loki.rs` and `src/ingest/otlp.rs`; the tests below decode
//! these bodies with the server's own parsers).
//!
//! Every record's line is `"<seq> xxx…"`: the subscriber reads the number
//! back to check that every record arrived once and in order.

use prost::Message;

/// The protocols `ingest` mode speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// Loki push: protobuf `PushRequest`, snappy block-compressed.
    Loki,
    /// OTLP/HTTP logs: protobuf `ExportLogsServiceRequest`.
    Otlp,
    /// RFC 5424 over TCP, octet-counted (RFC 6587).
    SyslogTcp,
}

impl Protocol {
    /// Name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Loki => "loki",
            Protocol::Otlp => "otlp",
            Protocol::SyslogTcp => "syslog-tcp",
        }
    }

    /// HTTP path and content type (`None` for syslog).
    pub fn http(self) -> Option<(&'static str, &'static str)> {
        match self {
            Protocol::Loki => Some(("/loki/api/v1/push", "application/x-protobuf")),
            Protocol::Otlp => Some(("/v1/logs", "application/x-protobuf")),
            Protocol::SyslogTcp => None,
        }
    }
}

/// Loki's `logproto` messages.
pub mod loki {
    /// `google.protobuf.Timestamp`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Timestamp {
        /// Seconds since the Unix epoch.
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        /// Nanoseconds within the second.
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }

    /// `PushRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PushRequest {
        /// The streams.
        #[prost(message, repeated, tag = "1")]
        pub streams: Vec<Stream>,
    }

    /// `StreamAdapter`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Stream {
        /// Prometheus label string.
        #[prost(string, tag = "1")]
        pub labels: String,
        /// The entries.
        #[prost(message, repeated, tag = "2")]
        pub entries: Vec<Entry>,
    }

    /// `EntryAdapter`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Entry {
        /// When it was logged.
        #[prost(message, optional, tag = "1")]
        pub timestamp: Option<Timestamp>,
        /// The line.
        #[prost(string, tag = "2")]
        pub line: String,
    }
}

/// OpenTelemetry's logs messages.
pub mod otlp {
    /// `ExportLogsServiceRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExportLogsServiceRequest {
        /// The records, grouped by resource.
        #[prost(message, repeated, tag = "1")]
        pub resource_logs: Vec<ResourceLogs>,
    }

    /// `ResourceLogs`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResourceLogs {
        /// The resource.
        #[prost(message, optional, tag = "1")]
        pub resource: Option<Resource>,
        /// The records, by scope.
        #[prost(message, repeated, tag = "2")]
        pub scope_logs: Vec<ScopeLogs>,
    }

    /// `Resource`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Resource {
        /// Its attributes.
        #[prost(message, repeated, tag = "1")]
        pub attributes: Vec<KeyValue>,
    }

    /// `ScopeLogs`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ScopeLogs {
        /// The scope.
        #[prost(message, optional, tag = "1")]
        pub scope: Option<InstrumentationScope>,
        /// The records.
        #[prost(message, repeated, tag = "2")]
        pub log_records: Vec<LogRecord>,
    }

    /// `InstrumentationScope`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct InstrumentationScope {
        /// Its name.
        #[prost(string, tag = "1")]
        pub name: String,
    }

    /// `LogRecord`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LogRecord {
        /// ns since the Unix epoch.
        #[prost(fixed64, tag = "1")]
        pub time_unix_nano: u64,
        /// `SeverityNumber`.
        #[prost(int32, tag = "2")]
        pub severity_number: i32,
        /// The level's name.
        #[prost(string, tag = "3")]
        pub severity_text: String,
        /// The line.
        #[prost(message, optional, tag = "5")]
        pub body: Option<AnyValue>,
        /// ns since the Unix epoch.
        #[prost(fixed64, tag = "11")]
        pub observed_time_unix_nano: u64,
    }

    /// `AnyValue`, string values only.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AnyValue {
        /// `string_value`.
        #[prost(string, optional, tag = "1")]
        pub string_value: Option<String>,
    }

    /// `KeyValue`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValue {
        /// The key.
        #[prost(string, tag = "1")]
        pub key: String,
        /// The value.
        #[prost(message, optional, tag = "2")]
        pub value: Option<AnyValue>,
    }
}

/// Words a line is made of, so that lines compress like log lines do
/// rather than like one repeated byte.
const WORDS: [&str; 16] = [
    "GET",
    "POST",
    "/api/v1/orders",
    "/static/app.js",
    "200",
    "404",
    "user=alice",
    "user=bob",
    "took=12ms",
    "took=3ms",
    "cache=hit",
    "cache=miss",
    "region=eu-west-1",
    "trace=9f3a61c2",
    "retry=0",
    "bytes=5120",
];

/// The line of record `seq`: `"<seq> "` and then words chosen by a
/// generator seeded with `seq`, cut to `size` bytes.
pub fn line(seq: u64, size: usize) -> String {
    let mut line = format!("{seq} ");
    let mut x = seq;
    while line.len() < size {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        line.push_str(WORDS[(x >> 60) as usize]);
        line.push(' ');
    }
    line.truncate(size.max(line.find(' ').unwrap_or(0) + 1));
    line.truncate(line.trim_end().len());
    line
}

/// Nanoseconds since the Unix epoch, now.
fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The HTTP body carrying records `first..first + count`.
pub fn http_body(protocol: Protocol, first: u64, count: u64, size: usize) -> Vec<u8> {
    let time = now_ns();
    match protocol {
        Protocol::Loki => {
            let entries = (first..first + count)
                .map(|seq| {
                    let t = time + seq % 1000;
                    loki::Entry {
                        timestamp: Some(loki::Timestamp {
                            seconds: (t / 1_000_000_000) as i64,
                            nanos: (t % 1_000_000_000) as i32,
                        }),
                        line: line(seq, size),
                    }
                })
                .collect();
            let request = loki::PushRequest {
                streams: vec![loki::Stream {
                    labels: r#"{job="bench", host="loadgen", level="info"}"#.into(),
                    entries,
                }],
            };
            snap::raw::Encoder::new()
                .compress_vec(&request.encode_to_vec())
                .expect("snappy compresses any input")
        }
        Protocol::Otlp => {
            let string = |s: &str| {
                Some(otlp::AnyValue {
                    string_value: Some(s.into()),
                })
            };
            let log_records = (first..first + count)
                .map(|seq| otlp::LogRecord {
                    time_unix_nano: time + seq % 1000,
                    observed_time_unix_nano: time,
                    severity_number: 9,
                    severity_text: "INFO".into(),
                    body: string(&line(seq, size)),
                })
                .collect();
            otlp::ExportLogsServiceRequest {
                resource_logs: vec![otlp::ResourceLogs {
                    resource: Some(otlp::Resource {
                        attributes: vec![
                            otlp::KeyValue {
                                key: "service.name".into(),
                                value: string("bench"),
                            },
                            otlp::KeyValue {
                                key: "host.name".into(),
                                value: string("loadgen"),
                            },
                        ],
                    }),
                    scope_logs: vec![otlp::ScopeLogs {
                        scope: Some(otlp::InstrumentationScope {
                            name: "tailcast-load".into(),
                        }),
                        log_records,
                    }],
                }],
            }
            .encode_to_vec()
        }
        Protocol::SyslogTcp => {
            let mut out = Vec::new();
            syslog_frames(&mut out, first, count, size);
            out
        }
    }
}

/// Appends records `first..first + count` as octet-counted RFC 5424
/// messages (`<134>1 TIMESTAMP loadgen tailcast-load - - - LINE`).
pub fn syslog_frames(out: &mut Vec<u8>, first: u64, count: u64, size: usize) {
    use std::io::Write as _;
    const HEAD: &str = "<134>1 2026-12-07T06:00:00.123456Z loadgen tailcast-load - - - ";
    for seq in first..first + count {
        let line = line(seq, size);
        let _ = write!(out, "{} {HEAD}{line}", HEAD.len() + line.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(records: &[tailcast::ingest::Record]) -> Vec<String> {
        records.iter().map(|r| r.line.clone()).collect()
    }

    fn want(first: u64, count: u64) -> Vec<String> {
        (first..first + count).map(|s| line(s, 64)).collect()
    }

    #[test]
    fn loki_bodies_decode_with_the_servers_parser() {
        let body = http_body(Protocol::Loki, 5000, 1000, 64);
        let raw = tailcast::ingest::loki::unsnap(&body, 1 << 20).unwrap();
        let records = tailcast::ingest::loki::parse_protobuf(&raw).unwrap();
        assert_eq!(lines(&records), want(5000, 1000));
        let channel = tailcast::ingest::channel_for(None, &records[0].labels);
        assert_eq!(channel.to_string(), "bench");
        assert_eq!(records[0].level.as_deref(), Some("info"));
    }

    #[test]
    fn otlp_bodies_decode_with_the_servers_parser() {
        let body = http_body(Protocol::Otlp, 0, 1000, 64);
        let records = tailcast::ingest::otlp::parse_protobuf(&body).unwrap();
        assert_eq!(lines(&records), want(0, 1000));
        let channel = tailcast::ingest::channel_for(None, &records[999].labels);
        assert_eq!(channel.to_string(), "bench");
    }

    #[test]
    fn syslog_frames_decode_with_the_servers_parser() {
        let mut out = Vec::new();
        syslog_frames(&mut out, 7, 3, 64);
        let mut rest = &out[..];
        let mut got = Vec::new();
        while !rest.is_empty() {
            let space = rest.iter().position(|&b| b == b' ').unwrap();
            let len: usize = std::str::from_utf8(&rest[..space])
                .unwrap()
                .parse()
                .unwrap();
            let frame = &rest[space + 1..space + 1 + len];
            got.push(tailcast::ingest::syslog::parse_message(frame).unwrap().line);
            rest = &rest[space + 1 + len..];
        }
        assert_eq!(got, want(7, 3));
    }
}
