//! Loki push (`POST /loki/api/v1/push`): the bodies Promtail, Grafana
//! Alloy, Vector's `loki` sink, Fluent Bit's `loki` output and the
//! language clients send, turned into [`Record`]s.
//!
//! Two formats, chosen by `Content-Type` (`Format::of`):
//!
//! - **protobuf** (`application/x-protobuf`, or no `Content-Type`, as Loki
//!   itself assumes): a `PushRequest` compressed with snappy's *block*
//!   (raw) format, always: Promtail sends it without `Content-Encoding`,
//!   Vector with `Content-Encoding: snappy`. [`unsnap`] checks the length
//!   the snappy header claims against the limit before it allocates.
//!   Stream labels arrive as a Prometheus label string (`{a="b", c="d"}`),
//!   read leniently by `parse_labels`.
//! - **JSON** (`application/json`): `{"streams":[{"stream":{labels},
//!   "values":[["<ns>","<line>",{metadata}]]}]}`; also Loki's older shape
//!   `{"streams":[{"labels":"{a=\"b\"}","entries":[{"ts":"<RFC 3339>",
//!   "line":"..."}]}]}`.
//!
//! One record per entry: labels are the stream's labels plus the entry's
//! structured metadata (a stream label wins a name clash); the level comes
//! from the first of the labels `level`, `severity`, `detected_level`
//! (lower-case); the time is the entry's.
//!
//! Invalid UTF-8 in a line, label or metadata is replaced by U+FFFD, not
//! refused: Loki itself stores such lines, and a shipper treats a 400 as
//! permanent and drops the whole batch, good lines included (a file in
//! Latin-1 followed by Promtail would lose everything).

use std::collections::BTreeMap;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

use super::{IngestError, Labels, Record, MAX_LABELS};

/// Labels whose value is a record's level, in order of preference.
pub(crate) const LEVEL_LABELS: [&str; 3] = ["level", "severity", "detected_level"];

/// The two body formats of a Loki push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// Snappy-compressed protobuf `PushRequest`.
    Protobuf,
    /// JSON `{"streams": [...]}`.
    Json,
}

impl Format {
    /// The format a `Content-Type` (lower-case, without parameters) names:
    /// `application/json` is JSON; `application/x-protobuf`,
    /// `application/protobuf` and none at all are protobuf. `None` for
    /// anything else.
    pub(crate) fn of(content_type: &str) -> Option<Format> {
        match content_type {
            "application/json" => Some(Format::Json),
            "" | "application/x-protobuf" | "application/protobuf" => Some(Format::Protobuf),
            _ => None,
        }
    }
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Timestamp {
    /// Seconds since the Unix epoch.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds within the second.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// Loki's `PushRequest` (`pkg/push/push.proto`, package `logproto`).
///
/// Text fields are declared `bytes` (the same wire type as `string`) so
/// that invalid UTF-8 is replaced rather than failing the whole request.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PushRequest {
    /// The streams.
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<StreamAdapter>,
}

/// One stream: its labels and entries.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct StreamAdapter {
    /// Prometheus label string, e.g. `{job="nginx", host="web-1"}`.
    #[prost(bytes = "vec", tag = "1")]
    pub labels: Vec<u8>,
    /// The entries, in order.
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<EntryAdapter>,
    /// The sender's hash of the labels (ignored).
    #[prost(uint64, tag = "3")]
    pub hash: u64,
}

/// One log entry.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct EntryAdapter {
    /// When it was logged.
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<Timestamp>,
    /// The line.
    #[prost(bytes = "vec", tag = "2")]
    pub line: Vec<u8>,
    /// Structured metadata: labels of this entry only.
    #[prost(message, repeated, tag = "3")]
    pub structured_metadata: Vec<LabelPairAdapter>,
}

/// One structured metadata pair.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct LabelPairAdapter {
    /// The name.
    #[prost(bytes = "vec", tag = "1")]
    pub name: Vec<u8>,
    /// The value.
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// Why a snappy block was not decompressed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnappyError {
    /// Its header claims more than the limit.
    #[error("the snappy body would decompress to {claimed} bytes, more than the limit of {limit} bytes (--max-body)")]
    TooLarge {
        /// What the header claims.
        claimed: usize,
        /// The limit.
        limit: usize,
    },
    /// Not snappy block data.
    #[error("{0}")]
    Corrupt(String),
}

/// Decompresses a snappy block (raw format, no framing) of at most
/// `limit` decompressed bytes. The length in the block's header is checked
/// before anything is allocated.
///
/// # Errors
/// [`SnappyError::TooLarge`] when the header claims more than `limit`;
/// [`SnappyError::Corrupt`] for data that is not a snappy block (named as
/// such, and said to look like JSON when it starts with `{`).
pub fn unsnap(body: &[u8], limit: usize) -> Result<Vec<u8>, SnappyError> {
    let corrupt = |reason: String| {
        let hint = if body.trim_ascii_start().starts_with(b"{") {
            " (it looks like JSON: send it with Content-Type: application/json)"
        } else {
            ""
        };
        SnappyError::Corrupt(format!(
            "the body is not snappy block-compressed data: {reason}{hint}"
        ))
    };
    let claimed = snap::raw::decompress_len(body).map_err(|e| corrupt(e.to_string()))?;
    if claimed > limit {
        return Err(SnappyError::TooLarge { claimed, limit });
    }
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| corrupt(e.to_string()))
}

/// The records of a decompressed protobuf `PushRequest`.
///
/// # Errors
/// [`IngestError::Invalid`] for bytes that are not a `PushRequest` or a
/// stream whose label string cannot be read (naming the stream);
/// [`IngestError::TooManyLabels`].
pub fn parse_protobuf(bytes: &[u8]) -> Result<Vec<Record>, IngestError> {
    let request = <PushRequest as prost::Message>::decode(bytes).map_err(|e| {
        IngestError::Invalid(format!("the body is not a Loki protobuf PushRequest: {e}"))
    })?;
    let mut records = Vec::with_capacity(request.streams.iter().map(|s| s.entries.len()).sum());
    for (index, stream) in request.streams.into_iter().enumerate() {
        let text = String::from_utf8_lossy(&stream.labels);
        let labels = parse_labels(&text).map_err(|e| in_stream(index, e))?;
        for entry in stream.entries {
            let metadata = entry
                .structured_metadata
                .into_iter()
                .map(|pair| (lossy(pair.name), lossy(pair.value)));
            let time_ns = entry.timestamp.map(|t| {
                t.seconds
                    .saturating_mul(1_000_000_000)
                    .saturating_add(i64::from(t.nanos))
            });
            records.push(record(&labels, metadata, time_ns, lossy(entry.line))?);
        }
    }
    Ok(records)
}

/// The records of a JSON push body (either shape, see the module docs).
///
/// # Errors
/// [`IngestError::Invalid`] naming what is wrong (and where: stream and
/// entry index); [`IngestError::TooManyLabels`].
pub(crate) fn parse_json(bytes: &[u8]) -> Result<Vec<Record>, IngestError> {
    let text = String::from_utf8_lossy(bytes);
    let push: JsonPush = serde_json::from_str(&text)
        .map_err(|e| IngestError::Invalid(format!("the body is not a Loki JSON push: {e}")))?;
    let mut records = Vec::new();
    for (index, stream) in push.streams.into_iter().enumerate() {
        let mut labels = Labels::new();
        if let Some(text) = &stream.labels {
            labels = parse_labels(text).map_err(|e| in_stream(index, e))?;
        }
        for (name, value) in stream.stream {
            labels.insert(name, json_text(value));
        }
        if labels.len() > MAX_LABELS {
            return Err(IngestError::TooManyLabels(labels.len()));
        }
        for (n, entry) in stream.values.into_iter().enumerate() {
            let time_ns = entry
                .time
                .nanos()
                .map_err(|e| IngestError::Invalid(format!("stream {index}, entry {n}: {e}")))?;
            let metadata = entry.metadata.into_iter().map(|(k, v)| (k, json_text(v)));
            records.push(record(&labels, metadata, Some(time_ns), entry.line)?);
        }
        for (n, entry) in stream.entries.into_iter().enumerate() {
            let time_ns = chrono::DateTime::parse_from_rfc3339(&entry.ts)
                .ok()
                .and_then(|t| t.timestamp_nanos_opt())
                .ok_or_else(|| {
                    IngestError::Invalid(format!(
                        "stream {index}, entry {n}: the time {:?} is not RFC 3339",
                        entry.ts
                    ))
                })?;
            records.push(record(
                &labels,
                std::iter::empty(),
                Some(time_ns),
                entry.line,
            )?);
        }
    }
    Ok(records)
}

/// One record: `labels` plus `metadata` (a stream label wins a clash),
/// its level from [`LEVEL_LABELS`].
fn record(
    labels: &Labels,
    metadata: impl Iterator<Item = (String, String)>,
    time_ns: Option<i64>,
    line: String,
) -> Result<Record, IngestError> {
    let mut labels = labels.clone();
    for (name, value) in metadata {
        labels.entry(name).or_insert(value);
    }
    if labels.len() > MAX_LABELS {
        return Err(IngestError::TooManyLabels(labels.len()));
    }
    let level = LEVEL_LABELS
        .iter()
        .find_map(|name| labels.get(*name))
        .map(|level| level.trim().to_lowercase())
        .filter(|level| !level.is_empty());
    Ok(Record {
        time_ns,
        line,
        level,
        labels,
    })
}

/// `bytes` as text, invalid UTF-8 replaced by U+FFFD (without a copy when
/// it is valid).
fn lossy(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn in_stream(index: usize, e: IngestError) -> IngestError {
    match e {
        IngestError::Invalid(text) => IngestError::Invalid(format!("stream {index}: {text}")),
        other => other,
    }
}

/// A JSON label or metadata value as text: a string as it is, anything
/// else as its JSON text.
fn json_text(value: serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => text,
        other => other.to_string(),
    }
}

#[derive(Deserialize)]
struct JsonPush {
    #[serde(default)]
    streams: Vec<JsonStream>,
}

#[derive(Deserialize)]
struct JsonStream {
    #[serde(default)]
    stream: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    values: Vec<JsonValue>,
    /// The older shape: a label string and `entries`.
    #[serde(default)]
    labels: Option<String>,
    #[serde(default)]
    entries: Vec<JsonEntry>,
}

#[derive(Deserialize)]
struct JsonEntry {
    ts: String,
    line: String,
}

/// `["<ns>", "<line>"]` or `["<ns>", "<line>", {metadata}]`.
struct JsonValue {
    time: JsonTime,
    line: String,
    metadata: BTreeMap<String, serde_json::Value>,
}

/// Nanoseconds since the epoch: a decimal string (what Loki specifies) or
/// a number.
#[derive(Deserialize)]
#[serde(untagged)]
enum JsonTime {
    Text(String),
    Number(i64),
}

impl JsonTime {
    fn nanos(&self) -> Result<i64, String> {
        match self {
            JsonTime::Number(ns) => Ok(*ns),
            JsonTime::Text(text) => text
                .trim()
                .parse()
                .map_err(|_| format!("the time {text:?} is not nanoseconds since the epoch")),
        }
    }
}

impl<'de> Deserialize<'de> for JsonValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<JsonValue, D::Error> {
        struct Entry;
        impl<'de> Visitor<'de> for Entry {
            type Value = JsonValue;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an entry [\"<ns>\", \"<line>\"] or [\"<ns>\", \"<line>\", {metadata}]")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsonValue, A::Error> {
                let time = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let line = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                let metadata: Option<BTreeMap<String, serde_json::Value>> = seq.next_element()?;
                if seq.next_element::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(4, &self));
                }
                Ok(JsonValue {
                    time,
                    line,
                    metadata: metadata.unwrap_or_default(),
                })
            }
        }
        deserializer.deserialize_seq(Entry)
    }
}

/// Reads a Prometheus label string such as `{job="nginx", host="web-1"}`,
/// leniently, since some clients do not escape what they put in it.
///
/// What is accepted:
/// - the empty string and `{}` (no labels); otherwise the text must be in
///   braces (whitespace around them is ignored);
/// - pairs `name="value"` separated by `,` (a trailing comma is fine),
///   whitespace around names, `=` and `,` ignored; a name is any text
///   without whitespace, `=`, `"`, `,`, `{` or `}`;
/// - in a value, `\\`, `\"` and `\n` are decoded; any other backslash is
///   kept as it is;
/// - a value ends at the first `"` (escaped or not) that is followed by
///   `, name="` or by the closing brace at the very end; any other `"` is
///   part of the value. So `{msg="say "hi"", path="C:\"}` reads as
///   `msg` = `say "hi"` and `path` = `C:\`. (A value that itself holds
///   `", x="` unescaped cannot be told apart from two labels and is read
///   as two; a trailing comma also closes a value.)
/// - a repeated name keeps its last value.
///
/// Time is linear in the length of the text.
///
/// # Errors
/// [`IngestError::Invalid`] saying what is wrong and where;
/// [`IngestError::TooManyLabels`] for more than [`MAX_LABELS`] pairs.
pub(crate) fn parse_labels(text: &str) -> Result<Labels, IngestError> {
    let trimmed = text.trim();
    let mut labels = Labels::new();
    if trimmed.is_empty() {
        return Ok(labels);
    }
    let inner = trimmed
        .strip_prefix('{')
        .and_then(|rest| rest.strip_suffix('}'))
        .ok_or_else(|| {
            IngestError::Invalid(format!(
                "the label string {} is not in braces {{name=\"value\", ...}}",
                shorten(trimmed)
            ))
        })?;
    let b = inner.as_bytes();
    let end = inner.trim_end().len();
    let invalid = |what: &str, at: usize| {
        IngestError::Invalid(format!(
            "the label string {} is not valid: {what} at byte {}",
            shorten(trimmed),
            at + 1
        ))
    };
    let mut pairs = 0usize;
    let mut i = skip_ws(b, 0);
    while i < end {
        let start = i;
        i = skip_name(b, i);
        if i == start {
            return Err(invalid("expected a label name", start));
        }
        let name = &inner[start..i];
        i = skip_ws(b, i);
        if b.get(i) != Some(&b'=') {
            return Err(invalid("expected '=' after a label name", i));
        }
        i = skip_ws(b, i + 1);
        if b.get(i) != Some(&b'"') {
            return Err(invalid("expected '\"' to start a label value", i));
        }
        let (value, next) =
            read_value(inner, i + 1, end).ok_or_else(|| invalid("unterminated label value", i))?;
        pairs += 1;
        if pairs > MAX_LABELS {
            // Count the rest without keeping it, to say how many.
            return Err(IngestError::TooManyLabels(
                pairs + inner[next..].matches("=\"").count(),
            ));
        }
        labels.insert(name.to_string(), value);
        i = skip_ws(b, next);
        if i >= end {
            break;
        }
        if b[i] != b',' {
            return Err(invalid("expected ',' between labels", i));
        }
        i = skip_ws(b, i + 1);
    }
    Ok(labels)
}

/// The value starting at `from` (just after its opening quote) and the
/// index after its closing quote; `None` when nothing closes it.
fn read_value(inner: &str, from: usize, end: usize) -> Option<(String, usize)> {
    let b = inner.as_bytes();
    let mut value = Vec::new();
    let mut i = from;
    while i < end {
        match b[i] {
            b'"' if closes(b, i, end) => return Some((lossy(value), i + 1)),
            b'\\' if i + 1 < end => match b[i + 1] {
                b'"' if closes(b, i + 1, end) => {
                    value.push(b'\\');
                    return Some((lossy(value), i + 2));
                }
                b'"' => {
                    value.push(b'"');
                    i += 2;
                }
                b'\\' => {
                    value.push(b'\\');
                    i += 2;
                }
                b'n' => {
                    value.push(b'\n');
                    i += 2;
                }
                _ => {
                    value.push(b'\\');
                    i += 1;
                }
            },
            byte => {
                value.push(byte);
                i += 1;
            }
        }
    }
    None
}

/// Whether the quote at `q` closes a value: it is the last character
/// before the closing brace, or `, name="` or a trailing `,` follows it. Scans only up to
/// the next quote, so reading a label string stays linear.
fn closes(b: &[u8], q: usize, end: usize) -> bool {
    if q + 1 == end {
        return true;
    }
    let i = skip_ws(b, q + 1);
    if b.get(i) != Some(&b',') {
        return false;
    }
    let start = skip_ws(b, i + 1);
    if start >= end {
        return true; // a trailing comma
    }
    let i = skip_name(b, start);
    if i == start {
        return false;
    }
    let i = skip_ws(b, i);
    if b.get(i) != Some(&b'=') {
        return false;
    }
    b.get(skip_ws(b, i + 1)) == Some(&b'"')
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

fn skip_name(b: &[u8], mut i: usize) -> usize {
    while i < b.len()
        && !b[i].is_ascii_whitespace()
        && !matches!(b[i], b'=' | b'"' | b',' | b'{' | b'}')
    {
        i += 1;
    }
    i
}

/// At most 80 characters of `text`, for an error message.
fn shorten(text: &str) -> String {
    if text.chars().count() <= 80 {
        return format!("{text:?}");
    }
    let head: String = text.chars().take(80).collect();
    format!("{head:?}...")
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use prost::Message as _;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn label_strings_are_read_leniently() {
        let ok = |text: &str| parse_labels(text).unwrap();
        assert_eq!(ok(""), Labels::new());
        assert_eq!(ok(" {} "), Labels::new());
        assert_eq!(
            ok(r#"{job="nginx", host="web-1"}"#),
            labels(&[("job", "nginx"), ("host", "web-1")])
        );
        assert_eq!(
            ok(r#"{ a = "1" ,b="2",}"#),
            labels(&[("a", "1"), ("b", "2")])
        );
        // Escapes as Prometheus writes them.
        assert_eq!(
            ok(r#"{msg="say \"hi\"", path="C:\\dir", nl="a\nb", other="\d"}"#),
            labels(&[
                ("msg", "say \"hi\""),
                ("path", "C:\\dir"),
                ("nl", "a\nb"),
                ("other", "\\d")
            ])
        );
        // Unescaped quotes and backslashes.
        assert_eq!(
            ok(r#"{msg="say "hi"", path="C:\"}"#),
            labels(&[("msg", "say \"hi\""), ("path", "C:\\")])
        );
        assert_eq!(
            ok(r#"{a="x", b="{}=,"}"#),
            labels(&[("a", "x"), ("b", "{}=,")])
        );
        assert_eq!(ok(r#"{a="1", a="2"}"#), labels(&[("a", "2")]));
        // Without a comma, the quote does not close: one value.
        assert_eq!(ok(r#"{a="1" b="2"}"#), labels(&[("a", "1\" b=\"2")]));
        assert_eq!(
            ok(r#"{service.name="checkout"}"#),
            labels(&[("service.name", "checkout")])
        );
        for bad in [
            r#"job="x""#,
            r#"{job}"#,
            r#"{job="x"#,
            r#"{="x"}"#,
            r#"{a=x}"#,
        ] {
            let e = parse_labels(bad).unwrap_err();
            assert!(matches!(e, IngestError::Invalid(_)), "{bad}: {e:?}");
        }
    }

    #[test]
    fn a_million_labels_are_refused_without_keeping_them() {
        let text = format!(
            "{{{}}}",
            (0..1_000_000)
                .map(|i| format!("l{i}=\"v\""))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert_eq!(
            parse_labels(&text),
            Err(IngestError::TooManyLabels(1_000_000))
        );
    }

    #[test]
    fn hostile_label_strings_are_read_in_linear_time() {
        // Each quote here would rescan the rest of the text if the check
        // for a closing quote were not bounded by the next quote: 10^10
        // steps; bounded, a few milliseconds.
        let n = 100_000;
        for text in [
            format!("{{a=\"{}\"}}", "\", ".repeat(n)),
            format!("{{a=\"{}\"}}", "\"}".repeat(n)),
            format!("{{a=\"{}\"}}", "\\\", b=".repeat(n)),
            format!("{{a=\"{}", "\", bbbbbbbb ".repeat(n)),
        ] {
            let started = std::time::Instant::now();
            let _ = parse_labels(&text);
            assert!(
                started.elapsed() < std::time::Duration::from_secs(5),
                "{:?}",
                &text[..40]
            );
        }
    }

    fn push(streams: Vec<StreamAdapter>) -> Vec<u8> {
        PushRequest { streams }.encode_to_vec()
    }

    fn entry(ns: i64, line: &[u8], meta: &[(&str, &str)]) -> EntryAdapter {
        EntryAdapter {
            timestamp: Some(Timestamp {
                seconds: ns.div_euclid(1_000_000_000),
                nanos: ns.rem_euclid(1_000_000_000) as i32,
            }),
            line: line.to_vec(),
            structured_metadata: meta
                .iter()
                .map(|(k, v)| LabelPairAdapter {
                    name: k.as_bytes().to_vec(),
                    value: v.as_bytes().to_vec(),
                })
                .collect(),
        }
    }

    #[test]
    fn protobuf_entries_become_records() {
        let body = push(vec![StreamAdapter {
            labels: br#"{job="nginx", level="WARN"}"#.to_vec(),
            entries: vec![
                entry(
                    1_796_623_200_123_456_789,
                    b"GET /a 200",
                    &[("trace_id", "t1")],
                ),
                entry(5, b"caf\xe9", &[("job", "other")]),
            ],
            hash: 7,
        }]);
        let records = parse_protobuf(&body).unwrap();
        assert_eq!(
            records,
            vec![
                Record {
                    time_ns: Some(1_796_623_200_123_456_789),
                    line: "GET /a 200".into(),
                    level: Some("warn".into()),
                    labels: labels(&[("job", "nginx"), ("level", "WARN"), ("trace_id", "t1")]),
                },
                Record {
                    time_ns: Some(5),
                    line: "caf\u{fffd}".into(),
                    level: Some("warn".into()),
                    labels: labels(&[("job", "nginx"), ("level", "WARN")]),
                },
            ]
        );
        assert!(parse_protobuf(&body[..body.len() - 3]).is_err());
        let bad_labels = push(vec![StreamAdapter {
            labels: b"job=x".to_vec(),
            entries: vec![],
            hash: 0,
        }]);
        let e = parse_protobuf(&bad_labels).unwrap_err().to_string();
        assert!(e.starts_with("stream 0: the label string"), "{e}");
    }

    #[test]
    fn snappy_bodies_are_bounded_before_decompressing() {
        let data = push(vec![StreamAdapter {
            labels: br#"{a="b"}"#.to_vec(),
            entries: vec![entry(1, b"x", &[])],
            hash: 0,
        }]);
        let packed = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(unsnap(&packed, 1024).unwrap(), data);
        assert_eq!(
            unsnap(&packed, 3),
            Err(SnappyError::TooLarge {
                claimed: data.len(),
                limit: 3
            })
        );
        // A header claiming 1 GiB followed by nothing.
        let bomb = [0x80, 0x80, 0x80, 0x80, 0x04];
        assert_eq!(
            unsnap(&bomb, 1 << 20),
            Err(SnappyError::TooLarge {
                claimed: 1 << 30,
                limit: 1 << 20
            })
        );
        let e = unsnap(br#"{"streams":[]}"#, 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not snappy") && e.contains("looks like JSON"),
            "{e}"
        );
    }

    #[test]
    fn json_pushes_become_records() {
        let body = br#"{"streams":[
            {"stream":{"job":"api","severity":"Error","n":3},
             "values":[["1796623200123456789","first"],[12,"second",{"trace_id":"t"}]]},
            {"labels":"{app=\"old\"}","entries":[{"ts":"2026-12-07T06:00:00Z","line":"legacy"}]}
        ]}"#;
        let records = parse_json(body).unwrap();
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].time_ns, Some(1_796_623_200_123_456_789));
        assert_eq!(records[0].level.as_deref(), Some("error"));
        assert_eq!(
            records[0].labels,
            labels(&[("job", "api"), ("severity", "Error"), ("n", "3")])
        );
        assert_eq!(records[1].line, "second");
        assert_eq!(
            records[1].labels.get("trace_id").map(String::as_str),
            Some("t")
        );
        assert_eq!(records[2].labels, labels(&[("app", "old")]));
        assert_eq!(records[2].time_ns, Some(1_796_623_200_000_000_000));
        assert!(
            parse_json(b"{\"streams\":[{\"stream\":{},\"values\":[[\"x\",\"l\"]]}]}")
                .unwrap_err()
                .to_string()
                .contains("stream 0, entry 0")
        );
        assert!(parse_json(b"{\"streams\":[{\"values\":[[\"1\"]]}]}").is_err());
        assert!(parse_json(b"\x00\x01").is_err());
        let latin1 = parse_json(b"{\"streams\":[{\"values\":[[\"1\",\"caf\xe9\"]]}]}").unwrap();
        assert_eq!(latin1[0].line, "caf\u{fffd}");
    }

    #[test]
    fn content_types_name_formats() {
        assert_eq!(Format::of("application/json"), Some(Format::Json));
        assert_eq!(Format::of("application/x-protobuf"), Some(Format::Protobuf));
        assert_eq!(Format::of(""), Some(Format::Protobuf));
        assert_eq!(Format::of("text/plain"), None);
    }

    fn escape(value: &str) -> String {
        value
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    }

    proptest! {
        #[test]
        fn label_strings_never_panic(text in ".{0,200}") {
            let _ = parse_labels(&text);
            let _ = parse_labels(&format!("{{{text}}}"));
        }

        #[test]
        fn escaped_label_strings_round_trip(
            map in prop::collection::btree_map("[a-zA-Z_][a-zA-Z0-9_]{0,8}", ".{0,20}", 0..8)
        ) {
            let text = format!("{{{}}}", map.iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect::<Vec<_>>().join(", "));
            prop_assert_eq!(parse_labels(&text).unwrap(), map);
        }

        #[test]
        fn unescaped_label_strings_round_trip(
            map in prop::collection::btree_map(
                "[a-zA-Z_][a-zA-Z0-9_]{0,8}", "([a-z{}=, ]|\"[a-z{}=])*", 0..8)
        ) {
            let text = format!("{{{}}}", map.iter()
                .map(|(k, v)| format!("{k}=\"{v}\""))
                .collect::<Vec<_>>().join(","));
            prop_assert_eq!(parse_labels(&text).unwrap(), map);
        }

        #[test]
        fn hostile_bodies_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_protobuf(&bytes);
            let _ = parse_json(&bytes);
            if let Ok(data) = unsnap(&bytes, 1 << 16) {
                prop_assert!(data.len() <= 1 << 16);
            }
        }
    }
}
