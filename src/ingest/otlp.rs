//! OTLP/HTTP logs (`POST /v1/logs`): the `ExportLogsServiceRequest` of
//! the OpenTelemetry protocol, as protobuf ([`parse_protobuf`]) or as
//! OTLP JSON (`parse_json`), into [`Record`]s.
//!
//! The messages are declared by hand with `prost` derive ([`proto`]; field
//! numbers from opentelemetry-proto's `logs/v1/logs.proto`,
//! `common/v1/common.proto`, `resource/v1/resource.proto` and
//! `collector/logs/v1/logs_service.proto`): no `protoc` at build time and
//! none of the gRPC machinery the `opentelemetry-proto` crate brings. OTLP
//! JSON is read by serde structs of this module, with OTLP's deviations
//! from proto3 JSON: trace and span ids as hex strings, enums as integers,
//! 64-bit integers as strings or numbers, lowerCamelCase names (the
//! snake_case names are accepted too), unknown fields ignored.
//!
//! One record per `LogRecord`:
//! - `time`: `time_unix_nano`, else `observed_time_unix_nano` (0, or a
//!   value past the year 2262, counts as absent), else the receive time;
//! - `line`: the body; a string body as it is, any other body as compact
//!   JSON text (see `value_json`), no body as `""`;
//! - `level`: `severity_text` in lower case, else `severity_number` mapped
//!   to `trace`/`debug`/`info`/`warn`/`error`/`fatal`, else a `level` or
//!   `severity` label in lower case, else none;
//! - `labels`: the resource's attributes, then the record's (a record
//!   attribute wins over a resource attribute of the same key, and a later
//!   duplicate over an earlier one), then `trace_id` and `span_id` as
//!   lower-case hex when present (they win over attributes of those
//!   names). A string attribute is its text; a bool, integer or double its
//!   JSON text (`true`, `42`, `1.5`); an array or key-value list its
//!   compact JSON text; bytes their base64 text; an empty value `""`.
//!   Scope attributes are not kept.
//!
//! Parsing only: no I/O, no status codes. A request that does not parse,
//! or with a record over [`MAX_LABELS`](super::MAX_LABELS) labels, is an
//! [`IngestError`] and gives no records at all.

use base64::Engine as _;
use prost::Message as _;
use serde::de::{self, Deserializer};
use serde::Deserialize;

use super::{IngestError, Labels, Record};

/// The OTLP messages a `/v1/logs` request and answer carry, declared with
/// `prost` derive. Fields tailcast does not use are left out: protobuf
/// skips unknown fields.
pub mod proto {
    /// `opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExportLogsServiceRequest {
        /// The records, grouped by resource.
        #[prost(message, repeated, tag = "1")]
        pub resource_logs: Vec<ResourceLogs>,
    }

    /// `opentelemetry.proto.logs.v1.ResourceLogs`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResourceLogs {
        /// The resource the records come from.
        #[prost(message, optional, tag = "1")]
        pub resource: Option<Resource>,
        /// The records, grouped by instrumentation scope.
        #[prost(message, repeated, tag = "2")]
        pub scope_logs: Vec<ScopeLogs>,
        /// Schema URL of the resource data.
        #[prost(string, tag = "3")]
        pub schema_url: String,
    }

    /// `opentelemetry.proto.resource.v1.Resource`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Resource {
        /// Attributes of the resource (`service.name`, `host.name`, ...).
        #[prost(message, repeated, tag = "1")]
        pub attributes: Vec<KeyValue>,
        /// Attributes the sender dropped.
        #[prost(uint32, tag = "2")]
        pub dropped_attributes_count: u32,
    }

    /// `opentelemetry.proto.logs.v1.ScopeLogs`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ScopeLogs {
        /// The instrumentation scope that emitted the records.
        #[prost(message, optional, tag = "1")]
        pub scope: Option<InstrumentationScope>,
        /// The records.
        #[prost(message, repeated, tag = "2")]
        pub log_records: Vec<LogRecord>,
        /// Schema URL of the records.
        #[prost(string, tag = "3")]
        pub schema_url: String,
    }

    /// `opentelemetry.proto.common.v1.InstrumentationScope`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct InstrumentationScope {
        /// Name of the scope (often the logger's name).
        #[prost(string, tag = "1")]
        pub name: String,
        /// Version of the scope.
        #[prost(string, tag = "2")]
        pub version: String,
        /// Attributes of the scope.
        #[prost(message, repeated, tag = "3")]
        pub attributes: Vec<KeyValue>,
        /// Attributes the sender dropped.
        #[prost(uint32, tag = "4")]
        pub dropped_attributes_count: u32,
    }

    /// `opentelemetry.proto.logs.v1.LogRecord`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LogRecord {
        /// When the event happened, ns since the Unix epoch (0: unknown).
        #[prost(fixed64, tag = "1")]
        pub time_unix_nano: u64,
        /// When the event was observed, ns since the Unix epoch (0: unknown).
        #[prost(fixed64, tag = "11")]
        pub observed_time_unix_nano: u64,
        /// `SeverityNumber`: 1-24, 0 unspecified.
        #[prost(int32, tag = "2")]
        pub severity_number: i32,
        /// The level as the source names it.
        #[prost(string, tag = "3")]
        pub severity_text: String,
        /// The log line or structured body.
        #[prost(message, optional, tag = "5")]
        pub body: Option<AnyValue>,
        /// Attributes of the record.
        #[prost(message, repeated, tag = "6")]
        pub attributes: Vec<KeyValue>,
        /// Attributes the sender dropped.
        #[prost(uint32, tag = "7")]
        pub dropped_attributes_count: u32,
        /// W3C trace flags in the low 8 bits.
        #[prost(fixed32, tag = "8")]
        pub flags: u32,
        /// 16-byte trace id, empty when absent.
        #[prost(bytes = "vec", tag = "9")]
        pub trace_id: Vec<u8>,
        /// 8-byte span id, empty when absent.
        #[prost(bytes = "vec", tag = "10")]
        pub span_id: Vec<u8>,
        /// Name of the event, for a record that is an event.
        #[prost(string, tag = "12")]
        pub event_name: String,
    }

    /// `opentelemetry.proto.common.v1.AnyValue`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AnyValue {
        /// The value; `None` for an empty value.
        #[prost(oneof = "any_value::Value", tags = "1, 2, 3, 4, 5, 6, 7")]
        pub value: Option<any_value::Value>,
    }

    /// The `oneof` of [`AnyValue`].
    pub mod any_value {
        /// One of the kinds of value an [`AnyValue`](super::AnyValue) holds.
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Value {
            /// `string_value`.
            #[prost(string, tag = "1")]
            StringValue(String),
            /// `bool_value`.
            #[prost(bool, tag = "2")]
            BoolValue(bool),
            /// `int_value`.
            #[prost(int64, tag = "3")]
            IntValue(i64),
            /// `double_value`.
            #[prost(double, tag = "4")]
            DoubleValue(f64),
            /// `array_value`.
            #[prost(message, tag = "5")]
            ArrayValue(super::ArrayValue),
            /// `kvlist_value`.
            #[prost(message, tag = "6")]
            KvlistValue(super::KeyValueList),
            /// `bytes_value`.
            #[prost(bytes = "vec", tag = "7")]
            BytesValue(Vec<u8>),
        }
    }

    /// `opentelemetry.proto.common.v1.ArrayValue`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ArrayValue {
        /// The elements.
        #[prost(message, repeated, tag = "1")]
        pub values: Vec<AnyValue>,
    }

    /// `opentelemetry.proto.common.v1.KeyValueList`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValueList {
        /// The pairs, in order.
        #[prost(message, repeated, tag = "1")]
        pub values: Vec<KeyValue>,
    }

    /// `opentelemetry.proto.common.v1.KeyValue`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValue {
        /// The key.
        #[prost(string, tag = "1")]
        pub key: String,
        /// The value.
        #[prost(message, optional, tag = "2")]
        pub value: Option<AnyValue>,
    }

    /// `opentelemetry.proto.collector.logs.v1.ExportLogsServiceResponse`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExportLogsServiceResponse {
        /// Set only when some records were rejected (tailcast takes a
        /// request all or nothing, so never).
        #[prost(message, optional, tag = "1")]
        pub partial_success: Option<ExportLogsPartialSuccess>,
    }

    /// `opentelemetry.proto.collector.logs.v1.ExportLogsPartialSuccess`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExportLogsPartialSuccess {
        /// Records rejected.
        #[prost(int64, tag = "1")]
        pub rejected_log_records: i64,
        /// Why.
        #[prost(string, tag = "2")]
        pub error_message: String,
    }

    /// `google.rpc.Status`, the body of an OTLP/HTTP error answer
    /// (`details` left out).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Status {
        /// A `google.rpc.Code`.
        #[prost(int32, tag = "1")]
        pub code: i32,
        /// What was wrong, for people.
        #[prost(string, tag = "2")]
        pub message: String,
    }
}

use proto::any_value::Value;

/// Parses a protobuf `ExportLogsServiceRequest` into records, in order.
///
/// # Errors
/// [`IngestError::Invalid`] for bytes that are not such a message
/// (truncated, wrong wire types, a string that is not UTF-8);
/// [`IngestError::TooManyLabels`].
pub fn parse_protobuf(body: &[u8]) -> Result<Vec<Record>, IngestError> {
    let request = proto::ExportLogsServiceRequest::decode(body).map_err(|e| {
        IngestError::Invalid(format!(
            "the body is not an OTLP ExportLogsServiceRequest in protobuf: {e}"
        ))
    })?;
    records(request)
}

/// Parses an OTLP JSON `ExportLogsServiceRequest` into records, in order.
///
/// # Errors
/// [`IngestError::Invalid`] for text that is not OTLP JSON, naming the
/// field that is wrong (`resourceLogs[0].scopeLogs[0].logRecords[2].
/// timeUnixNano: ...`); [`IngestError::TooManyLabels`].
pub(crate) fn parse_json(body: &[u8]) -> Result<Vec<Record>, IngestError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let request: json::Request = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            IngestError::Invalid(format!("the body is not OTLP JSON: {inner}"))
        } else {
            IngestError::Invalid(format!("OTLP JSON field {path}: {inner}"))
        }
    })?;
    de.end()
        .map_err(|e| IngestError::Invalid(format!("the body is not OTLP JSON: {e}")))?;
    records(request.into_proto())
}

/// The records of a request, in order, each checked.
fn records(request: proto::ExportLogsServiceRequest) -> Result<Vec<Record>, IngestError> {
    let mut out = Vec::new();
    for resource_logs in request.resource_logs {
        let resource_labels = resource_logs
            .resource
            .map(|r| labels_of(r.attributes))
            .unwrap_or_default();
        for scope_logs in resource_logs.scope_logs {
            for log in scope_logs.log_records {
                let record = record(&resource_labels, log);
                record.check()?;
                out.push(record);
            }
        }
    }
    Ok(out)
}

/// One record of `log`, with the labels of its resource.
fn record(resource: &Labels, log: proto::LogRecord) -> Record {
    let mut labels = resource.clone();
    labels.extend(labels_of(log.attributes));
    if !log.trace_id.is_empty() {
        labels.insert("trace_id".into(), hex(&log.trace_id));
    }
    if !log.span_id.is_empty() {
        labels.insert("span_id".into(), hex(&log.span_id));
    }
    let time_ns = [log.time_unix_nano, log.observed_time_unix_nano]
        .into_iter()
        .find(|&t| t != 0 && t <= i64::MAX as u64)
        .map(|t| t as i64);
    let line = match log.body.and_then(|b| b.value) {
        Some(Value::StringValue(s)) => s,
        Some(other) => value_json(&other).to_string(),
        None => String::new(),
    };
    let level = level(&log.severity_text, log.severity_number).or_else(|| {
        ["level", "severity"]
            .iter()
            .filter_map(|key| labels.get(*key))
            .map(|text| text.trim().to_lowercase())
            .find(|text| !text.is_empty())
    });
    Record {
        time_ns,
        line,
        level,
        labels,
    }
}

/// The level of a record: `text` in lower case, else `number` mapped.
pub(crate) fn level(text: &str, number: i32) -> Option<String> {
    let text = text.trim();
    if !text.is_empty() {
        return Some(text.to_lowercase());
    }
    let name = match number {
        1..=4 => "trace",
        5..=8 => "debug",
        9..=12 => "info",
        13..=16 => "warn",
        17..=20 => "error",
        21..=24 => "fatal",
        _ => return None,
    };
    Some(name.to_string())
}

/// Attributes as string labels, later keys winning.
fn labels_of(attributes: Vec<proto::KeyValue>) -> Labels {
    attributes
        .into_iter()
        .map(|kv| (kv.key, kv.value.and_then(|v| v.value)))
        .map(|(key, value)| {
            let text = match value {
                Some(Value::StringValue(s)) => s,
                Some(other) => value_json(&other).to_string(),
                None => String::new(),
            };
            (key, text)
        })
        .collect()
}

/// An OTLP value as plain JSON: a string, bool, integer or double as
/// itself (a non-finite double as the string `"NaN"`, `"Infinity"` or
/// `"-Infinity"`), an array as an array, a key-value list as an object
/// (keys sorted, a later duplicate key winning), bytes as their base64 text, an empty value as
/// `null`.
pub(crate) fn value_json(value: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    let any = |v: Option<&proto::AnyValue>| match v.and_then(|v| v.value.as_ref()) {
        Some(v) => value_json(v),
        None => J::Null,
    };
    match value {
        Value::StringValue(s) => J::String(s.clone()),
        Value::BoolValue(b) => J::Bool(*b),
        Value::IntValue(i) => J::from(*i),
        Value::DoubleValue(d) => match serde_json::Number::from_f64(*d) {
            Some(n) => J::Number(n),
            None if d.is_nan() => J::String("NaN".into()),
            None if *d > 0.0 => J::String("Infinity".into()),
            None => J::String("-Infinity".into()),
        },
        Value::ArrayValue(a) => J::Array(a.values.iter().map(|v| any(Some(v))).collect()),
        Value::KvlistValue(kv) => J::Object(
            kv.values
                .iter()
                .map(|kv| (kv.key.clone(), any(kv.value.as_ref())))
                .collect(),
        ),
        Value::BytesValue(b) => J::String(base64::engine::general_purpose::STANDARD.encode(b)),
    }
}

/// `bytes` as lower-case hex.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// The bytes of hex text (either case), `None` if it is not hex.
fn unhex(text: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let text = text.as_bytes();
    if text.len() % 2 != 0 {
        return None;
    }
    text.chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// The answer to a request taken whole: no partial success.
pub(crate) fn response_protobuf() -> Vec<u8> {
    proto::ExportLogsServiceResponse::default().encode_to_vec()
}

/// The answer to a request taken whole, as OTLP JSON.
pub(crate) const RESPONSE_JSON: &str = "{}";

/// A `google.rpc.Status` with `code` and `message`, as protobuf.
pub(crate) fn status_protobuf(code: i32, message: &str) -> Vec<u8> {
    proto::Status {
        code,
        message: message.to_string(),
    }
    .encode_to_vec()
}

/// A `google.rpc.Status` with `code` and `message`, as JSON.
pub(crate) fn status_json(code: i32, message: &str) -> String {
    serde_json::json!({ "code": code, "message": message }).to_string()
}

/// The OTLP JSON shapes, read leniently as OTLP asks, and turned into the
/// [`proto`] messages so that one path makes records from both.
mod json {
    use super::*;

    /// A field that may be `null` or absent: its default then.
    fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de> + Default,
    {
        Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
    }

    /// A 64-bit integer as a JSON number or a decimal string.
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Int64 {
        Number(serde_json::Number),
        Text(String),
    }

    fn int64<'de, D: Deserializer<'de>, T: std::str::FromStr + TryFrom<i64> + TryFrom<u64>>(
        d: D,
        what: &str,
    ) -> Result<T, D::Error> {
        let bad = || {
            de::Error::custom(format!(
                "expected {what} as a JSON integer or a decimal string"
            ))
        };
        match Option::<Int64>::deserialize(d).map_err(|_| bad())? {
            None => T::try_from(0i64).map_err(|_| bad()),
            Some(Int64::Number(n)) => {
                if let Some(u) = n.as_u64() {
                    T::try_from(u).map_err(|_| bad())
                } else if let Some(i) = n.as_i64() {
                    T::try_from(i).map_err(|_| bad())
                } else {
                    Err(bad())
                }
            }
            Some(Int64::Text(s)) => s.trim().parse::<T>().map_err(|_| bad()),
        }
    }

    fn uint64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        int64(d, "an unsigned 64-bit integer")
    }

    fn sint64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        int64(d, "a 64-bit integer")
    }

    fn sint32<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
        int64(d, "an integer (enums are integers in OTLP JSON)")
    }

    /// A double as a JSON number, or a string: a number or `NaN`,
    /// `Infinity`, `-Infinity`.
    fn double<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Double {
            Number(f64),
            Text(String),
        }
        let bad = || de::Error::custom("expected a double as a JSON number or string");
        match Option::<Double>::deserialize(d).map_err(|_| bad())? {
            None => Ok(None),
            Some(Double::Number(f)) => Ok(Some(f)),
            Some(Double::Text(s)) => match s.trim() {
                "NaN" => Ok(Some(f64::NAN)),
                "Infinity" => Ok(Some(f64::INFINITY)),
                "-Infinity" => Ok(Some(f64::NEG_INFINITY)),
                other => other.parse().map(Some).map_err(|_| bad()),
            },
        }
    }

    /// A trace or span id: hex text (OTLP JSON's deviation from base64).
    fn hex_id<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text: String = nullable(d)?;
        unhex(text.trim())
            .ok_or_else(|| de::Error::custom(format!("expected hex text, got {text:?}")))
    }

    /// Bytes: base64 text (standard or URL-safe alphabet).
    fn base64_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE};
        let Some(text) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        STANDARD
            .decode(text.trim())
            .or_else(|_| URL_SAFE.decode(text.trim()))
            .map(Some)
            .map_err(|_| de::Error::custom("expected base64 text"))
    }

    #[derive(Deserialize, Default)]
    #[serde(default, rename = "ExportLogsServiceRequest")]
    pub(super) struct Request {
        #[serde(
            rename = "resourceLogs",
            alias = "resource_logs",
            deserialize_with = "nullable"
        )]
        resource_logs: Vec<ResourceLogs>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct ResourceLogs {
        #[serde(deserialize_with = "nullable")]
        resource: Resource,
        #[serde(
            rename = "scopeLogs",
            alias = "scope_logs",
            deserialize_with = "nullable"
        )]
        scope_logs: Vec<ScopeLogs>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Resource {
        #[serde(deserialize_with = "nullable")]
        attributes: Vec<KeyValue>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct ScopeLogs {
        #[serde(
            rename = "logRecords",
            alias = "log_records",
            deserialize_with = "nullable"
        )]
        log_records: Vec<LogRecord>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct LogRecord {
        #[serde(
            rename = "timeUnixNano",
            alias = "time_unix_nano",
            deserialize_with = "uint64"
        )]
        time_unix_nano: u64,
        #[serde(
            rename = "observedTimeUnixNano",
            alias = "observed_time_unix_nano",
            deserialize_with = "uint64"
        )]
        observed_time_unix_nano: u64,
        #[serde(
            rename = "severityNumber",
            alias = "severity_number",
            deserialize_with = "sint32"
        )]
        severity_number: i32,
        #[serde(
            rename = "severityText",
            alias = "severity_text",
            deserialize_with = "nullable"
        )]
        severity_text: String,
        body: Option<AnyValue>,
        #[serde(deserialize_with = "nullable")]
        attributes: Vec<KeyValue>,
        #[serde(rename = "traceId", alias = "trace_id", deserialize_with = "hex_id")]
        trace_id: Vec<u8>,
        #[serde(rename = "spanId", alias = "span_id", deserialize_with = "hex_id")]
        span_id: Vec<u8>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct KeyValue {
        #[serde(deserialize_with = "nullable")]
        key: String,
        value: Option<AnyValue>,
    }

    /// `AnyValue`: at most one of its fields set.
    #[derive(Deserialize)]
    #[serde(try_from = "AnyValueFields")]
    struct AnyValue(Option<Value>);

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct AnyValueFields {
        #[serde(rename = "stringValue", alias = "string_value")]
        string_value: Option<String>,
        #[serde(rename = "boolValue", alias = "bool_value")]
        bool_value: Option<bool>,
        #[serde(
            rename = "intValue",
            alias = "int_value",
            deserialize_with = "opt_sint64"
        )]
        int_value: Option<i64>,
        #[serde(
            rename = "doubleValue",
            alias = "double_value",
            deserialize_with = "double"
        )]
        double_value: Option<f64>,
        #[serde(rename = "arrayValue", alias = "array_value")]
        array_value: Option<Values<AnyValue>>,
        #[serde(rename = "kvlistValue", alias = "kvlist_value")]
        kvlist_value: Option<Values<KeyValue>>,
        #[serde(
            rename = "bytesValue",
            alias = "bytes_value",
            deserialize_with = "base64_bytes"
        )]
        bytes_value: Option<Vec<u8>>,
    }

    fn opt_sint64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        if value.is_null() {
            return Ok(None);
        }
        sint64(value).map(Some).map_err(de::Error::custom)
    }

    /// `ArrayValue` and `KeyValueList`: `{"values": [...]}`.
    #[derive(Deserialize)]
    #[serde(default, bound(deserialize = "T: Deserialize<'de>"))]
    struct Values<T> {
        #[serde(deserialize_with = "nullable")]
        values: Vec<T>,
    }

    impl<T> Default for Values<T> {
        fn default() -> Self {
            Values { values: Vec::new() }
        }
    }

    impl TryFrom<AnyValueFields> for AnyValue {
        type Error = String;

        fn try_from(f: AnyValueFields) -> Result<AnyValue, String> {
            let values = [
                f.string_value.map(Value::StringValue),
                f.bool_value.map(Value::BoolValue),
                f.int_value.map(Value::IntValue),
                f.double_value.map(Value::DoubleValue),
                f.array_value.map(|a| {
                    Value::ArrayValue(proto::ArrayValue {
                        values: a.values.into_iter().map(AnyValue::into_proto).collect(),
                    })
                }),
                f.kvlist_value.map(|kv| {
                    Value::KvlistValue(proto::KeyValueList {
                        values: kv.values.into_iter().map(KeyValue::into_proto).collect(),
                    })
                }),
                f.bytes_value.map(Value::BytesValue),
            ];
            let mut set = values.into_iter().flatten();
            let first = set.next();
            if set.next().is_some() {
                return Err("an AnyValue holds more than one value".into());
            }
            Ok(AnyValue(first))
        }
    }

    impl AnyValue {
        fn into_proto(self) -> proto::AnyValue {
            proto::AnyValue { value: self.0 }
        }
    }

    impl KeyValue {
        fn into_proto(self) -> proto::KeyValue {
            proto::KeyValue {
                key: self.key,
                value: self.value.map(AnyValue::into_proto),
            }
        }
    }

    impl Request {
        pub(super) fn into_proto(self) -> proto::ExportLogsServiceRequest {
            let attributes =
                |kvs: Vec<KeyValue>| kvs.into_iter().map(KeyValue::into_proto).collect();
            proto::ExportLogsServiceRequest {
                resource_logs: self
                    .resource_logs
                    .into_iter()
                    .map(|rl| proto::ResourceLogs {
                        resource: Some(proto::Resource {
                            attributes: attributes(rl.resource.attributes),
                            dropped_attributes_count: 0,
                        }),
                        scope_logs: rl
                            .scope_logs
                            .into_iter()
                            .map(|sl| proto::ScopeLogs {
                                scope: None,
                                log_records: sl
                                    .log_records
                                    .into_iter()
                                    .map(|lr| proto::LogRecord {
                                        time_unix_nano: lr.time_unix_nano,
                                        observed_time_unix_nano: lr.observed_time_unix_nano,
                                        severity_number: lr.severity_number,
                                        severity_text: lr.severity_text,
                                        body: lr.body.map(AnyValue::into_proto),
                                        attributes: attributes(lr.attributes),
                                        trace_id: lr.trace_id,
                                        span_id: lr.span_id,
                                        ..Default::default()
                                    })
                                    .collect(),
                                schema_url: String::new(),
                            })
                            .collect(),
                        schema_url: String::new(),
                    })
                    .collect(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::proto::*;
    use super::*;
    use proptest::prelude::*;

    fn kv(key: &str, value: Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
        }
    }

    fn text(s: &str) -> Value {
        Value::StringValue(s.into())
    }

    fn request(resource: Vec<KeyValue>, logs: Vec<LogRecord>) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: resource,
                    dropped_attributes_count: 0,
                }),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: "app.logger".into(),
                        ..Default::default()
                    }),
                    log_records: logs,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn protobuf_records_carry_body_level_labels_and_time() {
        let body = request(
            vec![
                kv("service.name", text("checkout")),
                kv("host.name", text("web-1")),
                kv("env", text("prod")),
            ],
            vec![
                LogRecord {
                    time_unix_nano: 1_796_623_200_123_456_789,
                    observed_time_unix_nano: 5,
                    severity_number: 9,
                    body: Some(AnyValue {
                        value: Some(text("GET /a 200")),
                    }),
                    attributes: vec![
                        kv("env", text("staging")),
                        kv("status", Value::IntValue(200)),
                        kv("ok", Value::BoolValue(true)),
                        kv("ratio", Value::DoubleValue(0.5)),
                    ],
                    trace_id: vec![0xab; 16],
                    span_id: vec![1, 2, 3, 4, 5, 6, 7, 8],
                    ..Default::default()
                },
                LogRecord {
                    observed_time_unix_nano: 7,
                    severity_number: 18,
                    severity_text: " WARNING ".into(),
                    body: Some(AnyValue {
                        value: Some(Value::KvlistValue(KeyValueList {
                            values: vec![
                                kv("user", text("ann")),
                                kv(
                                    "tags",
                                    Value::ArrayValue(ArrayValue {
                                        values: vec![
                                            AnyValue {
                                                value: Some(Value::IntValue(1)),
                                            },
                                            AnyValue { value: None },
                                            AnyValue {
                                                value: Some(Value::BytesValue(vec![0, 255])),
                                            },
                                        ],
                                    }),
                                ),
                            ],
                        })),
                    }),
                    ..Default::default()
                },
                LogRecord {
                    severity_number: 23,
                    ..Default::default()
                },
            ],
        )
        .encode_to_vec();
        let records = parse_protobuf(&body).unwrap();
        assert_eq!(records.len(), 3);
        assert_eq!(
            records[0],
            Record {
                time_ns: Some(1_796_623_200_123_456_789),
                line: "GET /a 200".into(),
                level: Some("info".into()),
                labels: labels(&[
                    ("service.name", "checkout"),
                    ("host.name", "web-1"),
                    ("env", "staging"),
                    ("status", "200"),
                    ("ok", "true"),
                    ("ratio", "0.5"),
                    ("trace_id", "abababababababababababababababab"),
                    ("span_id", "0102030405060708"),
                ]),
            }
        );
        assert_eq!(records[1].time_ns, Some(7));
        assert_eq!(records[1].level.as_deref(), Some("warning"));
        assert_eq!(records[1].line, r#"{"tags":[1,null,"AP8="],"user":"ann"}"#);
        assert_eq!(
            records[1].labels.get("env").map(String::as_str),
            Some("prod")
        );
        assert_eq!(records[2].time_ns, None);
        assert_eq!(records[2].line, "");
        assert_eq!(records[2].level.as_deref(), Some("fatal"));
        let by_label = request(
            vec![kv("severity", text("NOTICE"))],
            vec![
                LogRecord::default(),
                LogRecord {
                    attributes: vec![kv("level", text("Debug"))],
                    ..Default::default()
                },
                LogRecord {
                    severity_number: 13,
                    attributes: vec![kv("level", text("x"))],
                    ..Default::default()
                },
            ],
        )
        .encode_to_vec();
        let levels: Vec<_> = parse_protobuf(&by_label)
            .unwrap()
            .into_iter()
            .map(|r| r.level)
            .collect();
        assert_eq!(
            levels,
            [
                Some("notice".into()),
                Some("debug".into()),
                Some("warn".into())
            ]
        );
        assert_eq!(
            crate::ingest::channel_for(None, &records[0].labels).to_string(),
            "checkout"
        );
    }

    #[test]
    fn severity_numbers_map_to_levels() {
        let names: Vec<Option<String>> = (0..=25).map(|n| level("", n)).collect();
        assert_eq!(names[0], None);
        assert_eq!(names[25], None);
        for (n, want) in [
            (1, "trace"),
            (4, "trace"),
            (5, "debug"),
            (8, "debug"),
            (9, "info"),
            (12, "info"),
            (13, "warn"),
            (16, "warn"),
            (17, "error"),
            (20, "error"),
            (21, "fatal"),
            (24, "fatal"),
        ] {
            assert_eq!(names[n].as_deref(), Some(want), "severity {n}");
        }
        assert_eq!(level("Error", 9).as_deref(), Some("error"));
        assert_eq!(level("", -3), None);
    }

    #[test]
    fn otlp_json_with_its_deviations_parses_like_protobuf() {
        let body = br#"{
          "resourceLogs": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "my.service"}}], "droppedAttributesCount": 0},
            "scopeLogs": [{
              "scope": {"name": "my.library", "version": "1.0.0"},
              "logRecords": [{
                "timeUnixNano": "1544712660300000000",
                "observedTimeUnixNano": 1544712660300000001,
                "severityNumber": 10,
                "severityText": "Information",
                "traceId": "5B8EFFF798038103D269B633813FC60C",
                "spanId": "eee19b7ec3c1b174",
                "body": {"stringValue": "Example log record"},
                "attributes": [
                  {"key": "string.attribute", "value": {"stringValue": "some string"}},
                  {"key": "boolean.attribute", "value": {"boolValue": true}},
                  {"key": "int.attribute", "value": {"intValue": "10"}},
                  {"key": "int.number", "value": {"intValue": -3}},
                  {"key": "double.attribute", "value": {"doubleValue": 637.704}},
                  {"key": "nan", "value": {"doubleValue": "NaN"}},
                  {"key": "array.attribute", "value": {"arrayValue": {"values": [{"stringValue": "many"}, {"stringValue": "values"}]}}},
                  {"key": "map.attribute", "value": {"kvlistValue": {"values": [{"key": "some.map.key", "value": {"stringValue": "some value"}}]}}},
                  {"key": "bytes", "value": {"bytesValue": "AP8="}},
                  {"key": "empty", "value": {}}
                ],
                "futureField": {"anything": [1, 2]}
              }, {
                "time_unix_nano": 5,
                "body": {"kvlistValue": {"values": [{"key": "a", "value": {"intValue": "9007199254740993"}}]}},
                "attributes": null
              }]
            }]
          }]
        }"#;
        let records = parse_json(body).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(
            records[0],
            Record {
                time_ns: Some(1_544_712_660_300_000_000),
                line: "Example log record".into(),
                level: Some("information".into()),
                labels: labels(&[
                    ("service.name", "my.service"),
                    ("string.attribute", "some string"),
                    ("boolean.attribute", "true"),
                    ("int.attribute", "10"),
                    ("int.number", "-3"),
                    ("double.attribute", "637.704"),
                    ("nan", "\"NaN\""),
                    ("array.attribute", r#"["many","values"]"#),
                    ("map.attribute", r#"{"some.map.key":"some value"}"#),
                    ("bytes", "\"AP8=\""),
                    ("empty", ""),
                    ("trace_id", "5b8efff798038103d269b633813fc60c"),
                    ("span_id", "eee19b7ec3c1b174"),
                ]),
            }
        );
        assert_eq!(records[1].time_ns, Some(5));
        assert_eq!(records[1].line, r#"{"a":9007199254740993}"#);
        assert_eq!(parse_json(b"{}").unwrap(), vec![]);
        assert_eq!(parse_json(br#"{"resourceLogs": null}"#).unwrap(), vec![]);
    }

    fn invalid(result: Result<Vec<Record>, IngestError>) -> String {
        match result {
            Err(IngestError::Invalid(text)) => text,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn wrong_json_is_refused_naming_the_field() {
        let field = |json: &str| invalid(parse_json(json.as_bytes()));
        let e =
            field(r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":true}]}]}]}"#);
        assert!(
            e.contains("resourceLogs[0].scopeLogs[0].logRecords[0].timeUnixNano"),
            "{e}"
        );
        let e = field(
            r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{},{"severityNumber":"SEVERITY_NUMBER_INFO"}]}]}]}"#,
        );
        assert!(e.contains("logRecords[1].severityNumber"), "{e}");
        let e = field(r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"xyz"}]}]}]}"#);
        assert!(e.contains("logRecords[0].traceId"), "{e}");
        let e = field(
            r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"a","intValue":1}}]}]}]}"#,
        );
        assert!(
            e.contains("logRecords[0].body") && e.contains("more than one"),
            "{e}"
        );
        let e = field(r#"{"resourceLogs":{"scopeLogs":[]}}"#);
        assert!(e.contains("resourceLogs"), "{e}");
        let e = field(
            r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"k","value":{"stringValue":5}}]}}]}"#,
        );
        assert!(e.contains("resource.attributes[0].value"), "{e}");
        assert!(field("[1,2]").contains("OTLP JSON"));
        assert!(field("{} x").contains("OTLP JSON"));
        assert!(field("").contains("OTLP JSON"));
    }

    #[test]
    fn bad_protobuf_is_refused() {
        let good = request(
            vec![kv("service.name", text("s"))],
            vec![LogRecord {
                body: Some(AnyValue {
                    value: Some(text("hello world")),
                }),
                ..Default::default()
            }],
        )
        .encode_to_vec();
        assert_eq!(parse_protobuf(&good).unwrap().len(), 1);
        let e = invalid(parse_protobuf(&good[..good.len() - 3]));
        assert!(e.contains("protobuf"), "{e}");
        let mut bad_utf8 = good.clone();
        let at = bad_utf8.windows(5).position(|w| w == b"hello").unwrap();
        bad_utf8[at] = 0xff;
        let e = invalid(parse_protobuf(&bad_utf8));
        assert!(e.contains("UTF-8"), "{e}");
        assert!(parse_protobuf(b"{\"resourceLogs\":[]}").is_err());
        assert_eq!(parse_protobuf(b"").unwrap(), vec![]);
    }

    #[test]
    fn too_many_labels_refuse_the_request() {
        let attributes = (0..=crate::ingest::MAX_LABELS)
            .map(|i| kv(&format!("k{i}"), text("v")))
            .collect();
        let body = request(
            vec![],
            vec![
                LogRecord::default(),
                LogRecord {
                    attributes,
                    ..Default::default()
                },
            ],
        )
        .encode_to_vec();
        assert_eq!(
            parse_protobuf(&body),
            Err(IngestError::TooManyLabels(crate::ingest::MAX_LABELS + 1))
        );
    }

    #[test]
    fn answers_encode() {
        assert!(response_protobuf().is_empty());
        assert_eq!(
            Status::decode(&status_protobuf(3, "bad")[..]).unwrap(),
            Status {
                code: 3,
                message: "bad".into()
            }
        );
        assert_eq!(
            status_json(3, "bad \"x\""),
            r#"{"code":3,"message":"bad \"x\""}"#
        );
    }

    /// `field` (length-delimited) holding `inner`, as protobuf bytes.
    fn wrap(field: u32, inner: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        prost::encoding::encode_key(field, prost::encoding::WireType::LengthDelimited, &mut out);
        prost::encoding::encode_varint(inner.len() as u64, &mut out);
        out.extend_from_slice(inner);
        out
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        // Built by hand: encoding (or dropping) so deep a message would
        // itself overflow the test's stack.
        let mut value = wrap(1, b"leaf");
        for _ in 0..10_000 {
            value = wrap(5, &wrap(1, &value));
        }
        let body = wrap(1, &wrap(2, &wrap(2, &wrap(5, &value))));
        assert!(invalid(parse_protobuf(&body)).contains("recursion"));
        let json = format!(
            r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{}"x"{}}}]}}]}}]}}"#,
            r#"{"arrayValue":{"values":["#.repeat(10_000),
            "]}}".repeat(10_000)
        );
        assert!(invalid(parse_json(json.as_bytes())).contains("recursion"));
        // Within the limits, nested values render as JSON.
        let mut value = AnyValue {
            value: Some(Value::IntValue(1)),
        };
        for _ in 0..20 {
            value = AnyValue {
                value: Some(Value::ArrayValue(ArrayValue {
                    values: vec![value],
                })),
            };
        }
        let log = LogRecord {
            body: Some(value),
            ..Default::default()
        };
        let records = parse_protobuf(&request(vec![], vec![log]).encode_to_vec()).unwrap();
        assert_eq!(
            records[0].line,
            format!("{}1{}", "[".repeat(20), "]".repeat(20))
        );
    }

    proptest! {
        #[test]
        fn mutated_requests_never_panic(
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        ) {
            let mut pb = request(
                vec![kv("service.name", text("svc"))],
                vec![LogRecord {
                    body: Some(AnyValue { value: Some(text("hello")) }),
                    attributes: vec![kv("n", Value::IntValue(-5)), kv("d", Value::DoubleValue(1.5))],
                    trace_id: vec![7; 16],
                    ..Default::default()
                }],
            )
            .encode_to_vec();
            let mut js = br#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},"scopeLogs":[{"logRecords":[{"timeUnixNano":"12","severityNumber":9,"traceId":"0a0b","body":{"kvlistValue":{"values":[{"key":"a","value":{"doubleValue":"NaN"}}]}}}]}]}]}"#.to_vec();
            for (at, byte) in &flips {
                let i = at.index(pb.len());
                pb[i] = *byte;
                let j = at.index(js.len());
                js[j] = *byte;
            }
            let _ = parse_protobuf(&pb);
            let _ = parse_json(&js);
        }

        #[test]
        fn hostile_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_protobuf(&bytes);
            let _ = parse_json(&bytes);
        }

        #[test]
        fn records_survive_protobuf(
            lines in proptest::collection::vec(".{0,40}", 0..20),
            severity in 0i32..30,
            time in any::<u64>(),
        ) {
            let logs = lines.iter().map(|l| LogRecord {
                time_unix_nano: time,
                severity_number: severity,
                body: Some(AnyValue { value: Some(text(l)) }),
                attributes: vec![kv("line", text(l))],
                ..Default::default()
            }).collect();
            let body = request(vec![kv("service.name", text("svc"))], logs).encode_to_vec();
            let records = parse_protobuf(&body).unwrap();
            prop_assert_eq!(records.len(), lines.len());
            for (record, line) in records.iter().zip(&lines) {
                prop_assert_eq!(&record.line, line);
                prop_assert_eq!(record.labels.get("line"), Some(line));
                prop_assert_eq!(record.level.clone(), level("", severity));
                prop_assert_eq!(record.time_ns, (time != 0 && time <= i64::MAX as u64).then_some(time as i64));
            }
            // The fields of a protobuf body parse as JSON too (mutated:
            // the JSON parser must not panic on anything).
            let _ = parse_json(&body);
        }
    }
}
