//! Syslog: RFC 5424 and RFC 3164 messages as [`Record`]s, the TCP framing
//! of RFC 6587 (octet counting or LF-terminated), and the channel template
//! of `--syslog-channel`.
//!
//! Pure: bytes in, frames and records out. The sockets, the limits in
//! time and the counting live in `crate::syslog`.
//!
//! Messages are parsed by `syslog_loose`, which accepts both RFCs and the
//! many near-misses real devices send. It also accepts text with no
//! `<PRI>` at all; that is no syslog message, and is refused here
//! ([`parse_message`]), so that a port scanner or an HTTP client talking to
//! the syslog port is counted as garbage rather than published.
//!
//! Severities become levels as `emerg`, `alert`, `crit`, `error`, `warn`,
//! `notice`, `info`, `debug` (RFC 5424 names, with `err` and `warning`
//! spelled as the other protocols spell them, so one `level` filter works
//! for every source).

use bytes::{Buf, Bytes, BytesMut};
use chrono::Datelike;
use syslog_loose::{ProcId, SyslogSeverity, Variant};

use super::{reduce_to_channel, IngestError, Labels, Record};
use crate::hub::{ChannelKind, ChannelName};

/// Default `--syslog-channel`.
pub(crate) const DEFAULT_TEMPLATE: &str = "syslog";

/// What stands in for a missing or unusable `{host}` or `{app}`.
const UNKNOWN: &str = "unknown";

/// Most digits of an octet count (a count of 999,999,999 bytes is far
/// beyond any frame limit already).
const MAX_COUNT_DIGITS: usize = 9;

/// The level of a syslog severity (see the module header).
pub(crate) fn level_of(severity: SyslogSeverity) -> &'static str {
    match severity {
        SyslogSeverity::SEV_EMERG => "emerg",
        SyslogSeverity::SEV_ALERT => "alert",
        SyslogSeverity::SEV_CRIT => "crit",
        SyslogSeverity::SEV_ERR => "error",
        SyslogSeverity::SEV_WARNING => "warn",
        SyslogSeverity::SEV_NOTICE => "notice",
        SyslogSeverity::SEV_INFO => "info",
        SyslogSeverity::SEV_DEBUG => "debug",
    }
}

/// One syslog message (a TCP frame or a UDP datagram, without framing) as
/// a record: `time` from the message's timestamp (none: the receive time
/// is used later), `line` the MSG part, `level` from the severity, labels
/// `host`, `app`, `procid`, `msgid`, `facility` and structured data as
/// `SDID.PARAM`. Invalid UTF-8 is replaced (U+FFFD).
///
/// # Errors
/// [`IngestError::Invalid`] for text that does not start with a `<PRI>`
/// (1 to 3 digits, at most 191) or that neither RFC parses;
/// [`IngestError::TooManyLabels`].
pub fn parse_message(bytes: &[u8]) -> Result<Record, IngestError> {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_end_matches(['\n', '\r', '\0']);
    check_pri(text)?;
    let year = |(month, ..): syslog_loose::IncompleteDate| year_for(month);
    let message = syslog_loose::parse_message_with_year_exact(text, year, Variant::Either)
        .map_err(|_| IngestError::Invalid("not an RFC 5424 or RFC 3164 syslog message".into()))?;
    let mut labels = Labels::new();
    let mut put = |key: &str, value: &str| {
        if !value.is_empty() && value != "-" {
            labels.insert(key.to_string(), value.to_string());
        }
    };
    if let Some(host) = message.hostname {
        put("host", host);
    }
    if let Some(app) = message.appname {
        put("app", app);
    }
    match &message.procid {
        Some(ProcId::PID(pid)) => put("procid", &pid.to_string()),
        Some(ProcId::Name(name)) => put("procid", name),
        None => {}
    }
    if let Some(msgid) = message.msgid {
        put("msgid", msgid);
    }
    if let Some(facility) = message.facility {
        put("facility", facility.as_str());
    }
    for element in &message.structured_data {
        for (name, value) in element.params() {
            let key = format!("{}.{}", element.id, name);
            labels.insert(key, value);
        }
    }
    let line = message.msg.strip_prefix('\u{feff}').unwrap_or(message.msg);
    let record = Record {
        time_ns: message.timestamp.and_then(|t| t.timestamp_nanos_opt()),
        line: line.to_string(),
        level: message.severity.map(|s| level_of(s).to_string()),
        labels,
    };
    record.check()?;
    Ok(record)
}

/// Refuses text that does not open with `<PRI>`.
fn check_pri(text: &str) -> Result<(), IngestError> {
    let refuse = || IngestError::Invalid("a syslog message starts with <PRI>, e.g. <13>".into());
    let rest = text.strip_prefix('<').ok_or_else(refuse)?;
    let end = rest
        .find('>')
        .filter(|&n| (1..=3).contains(&n))
        .ok_or_else(refuse)?;
    let digits = &rest[..end];
    match digits.parse::<u8>() {
        Ok(pri) if pri <= 191 && digits.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
        _ => Err(refuse()),
    }
}

/// The year of an RFC 3164 timestamp (which has none): this year, or last
/// year for a month after the current one (a December message read in
/// January).
fn year_for(month: u32) -> i32 {
    let now = chrono::Local::now();
    if month > now.month() {
        now.year() - 1
    } else {
        now.year()
    }
}

/// `--syslog-channel`: a channel name in which `{host}` and `{app}` are
/// replaced by the message's host and app name, reduced to channel
/// characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelTemplate {
    text: String,
    /// The template without placeholders, already a channel.
    fixed: Option<ChannelName>,
}

impl ChannelTemplate {
    /// Checks `text`: with its placeholders filled in, it must be an
    /// ordinary channel name (not `log:...`, not `broadcast`).
    ///
    /// # Errors
    /// A message saying why no message could ever map to a valid channel.
    pub fn parse(text: &str) -> Result<ChannelTemplate, String> {
        let sample = fill(text, "a", "a");
        let channel = ChannelName::parse(&sample).map_err(|e| {
            format!("{text:?} does not make a channel name ({e}); placeholders: {{host}}, {{app}}")
        })?;
        if channel.kind() != ChannelKind::Ordinary {
            return Err(format!(
                "{text:?} names a reserved channel; syslog needs an ordinary channel"
            ));
        }
        let fixed = (!text.contains("{host}") && !text.contains("{app}")).then_some(channel);
        Ok(ChannelTemplate {
            text: text.to_string(),
            fixed,
        })
    }

    /// The channel of a record with these labels (`host`, `app`): the
    /// template filled in. A filled-in name that is too long or reserved
    /// is reduced to channel characters.
    pub fn channel(&self, labels: &Labels) -> ChannelName {
        if let Some(fixed) = &self.fixed {
            return fixed.clone();
        }
        let part = |key: &str| {
            labels
                .get(key)
                .and_then(|value| reduce_to_channel(value))
                .map(|c| c.to_string())
                .unwrap_or_else(|| UNKNOWN.to_string())
        };
        let filled = fill(&self.text, &part("host"), &part("app"));
        ChannelName::parse(&filled)
            .ok()
            .filter(|c| c.kind() == ChannelKind::Ordinary)
            .or_else(|| reduce_to_channel(&filled))
            .unwrap_or_else(|| ChannelName::parse(DEFAULT_TEMPLATE).expect("a valid name"))
    }
}

impl std::fmt::Display for ChannelTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl Default for ChannelTemplate {
    fn default() -> Self {
        ChannelTemplate::parse(DEFAULT_TEMPLATE).expect("a valid template")
    }
}

fn fill(template: &str, host: &str, app: &str) -> String {
    template.replace("{host}", host).replace("{app}", app)
}

/// Why a TCP connection's byte stream cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    /// A frame (octet count or line) longer than the limit.
    #[error("a frame of more than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// An octet-counted frame that does not start with `LEN SP`.
    #[error("an octet-counted frame must start with its length and a space")]
    BadCount,
}

/// How a TCP connection frames its messages (RFC 6587), decided by its
/// first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TcpFraming {
    /// `LEN SP MSG`: the connection's first byte is a digit.
    OctetCounting,
    /// Messages ending with LF: anything else (a message starts with `<`).
    NonTransparent,
}

/// Splits a TCP connection's bytes into frames. Feed it the connection's
/// buffer after each read; it takes complete frames off its front.
#[derive(Debug)]
pub(crate) struct Framer {
    framing: Option<TcpFraming>,
    max_frame: usize,
    /// LF framing: bytes of the buffer already searched for LF.
    searched: usize,
}

impl Framer {
    /// A framer for a new connection, refusing frames over `max_frame`
    /// bytes.
    pub(crate) fn new(max_frame: usize) -> Framer {
        Framer {
            framing: None,
            max_frame,
            searched: 0,
        }
    }

    /// The connection's framing, once its first byte arrived.
    #[cfg(test)]
    pub(crate) fn framing(&self) -> Option<TcpFraming> {
        self.framing
    }

    /// Takes the next complete frame off `buf` (`None`: more bytes are
    /// needed). LF framing drops a CR before the LF and skips empty lines;
    /// octet counting skips LF and CR between frames.
    ///
    /// # Errors
    /// [`FrameError`]: the connection must be closed.
    pub(crate) fn next_frame(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        loop {
            if buf.is_empty() {
                return Ok(None);
            }
            let framing = *self.framing.get_or_insert(if buf[0].is_ascii_digit() {
                TcpFraming::OctetCounting
            } else {
                TcpFraming::NonTransparent
            });
            let frame = match framing {
                TcpFraming::OctetCounting => self.octet_counted(buf)?,
                TcpFraming::NonTransparent => self.line(buf)?,
            };
            match frame {
                Some(frame) if frame.is_empty() => continue,
                other => return Ok(other),
            }
        }
    }

    fn octet_counted(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let skip = buf
            .iter()
            .take_while(|b| matches!(b, b'\n' | b'\r'))
            .count();
        buf.advance(skip);
        let digits = buf.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == buf.len() {
            return if digits > MAX_COUNT_DIGITS {
                Err(FrameError::TooLarge {
                    limit: self.max_frame,
                })
            } else {
                Ok(None)
            };
        }
        if digits == 0 || buf[digits] != b' ' || buf[0] == b'0' {
            return Err(FrameError::BadCount);
        }
        if digits > MAX_COUNT_DIGITS {
            return Err(FrameError::TooLarge {
                limit: self.max_frame,
            });
        }
        let len: usize = std::str::from_utf8(&buf[..digits])
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or(FrameError::BadCount)?;
        if len > self.max_frame {
            return Err(FrameError::TooLarge {
                limit: self.max_frame,
            });
        }
        if buf.len() < digits + 1 + len {
            return Ok(None);
        }
        buf.advance(digits + 1);
        Ok(Some(buf.split_to(len).freeze()))
    }

    fn line(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let Some(at) = memchr::memchr(b'\n', &buf[self.searched..]).map(|i| self.searched + i)
        else {
            self.searched = buf.len();
            if buf.len() > self.max_frame {
                return Err(FrameError::TooLarge {
                    limit: self.max_frame,
                });
            }
            return Ok(None);
        };
        self.searched = 0;
        if at > self.max_frame {
            return Err(FrameError::TooLarge {
                limit: self.max_frame,
            });
        }
        let mut line = buf.split_to(at + 1);
        line.truncate(at);
        if line.last() == Some(&b'\r') {
            line.truncate(at - 1);
        }
        Ok(Some(line.freeze()))
    }

    /// What is left when the connection ends: with LF framing a last
    /// message without its LF is a frame; with octet counting, a partial
    /// frame is an error.
    ///
    /// # Errors
    /// [`FrameError::BadCount`] for a truncated octet-counted frame.
    pub(crate) fn finish(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        if let Some(frame) = self.next_frame(buf)? {
            return Ok(Some(frame));
        }
        let rest = buf.split().freeze();
        match self.framing {
            _ if rest.iter().all(|b| matches!(b, b'\n' | b'\r')) => Ok(None),
            Some(TcpFraming::OctetCounting) => Err(FrameError::BadCount),
            _ => {
                let end = rest.len() - usize::from(rest.last() == Some(&b'\r'));
                Ok(Some(rest.slice(..end)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frames(framer: &mut Framer, bytes: &[u8]) -> Result<Vec<String>, FrameError> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(frame) = framer.next_frame(&mut buf)? {
            out.push(String::from_utf8_lossy(&frame).into_owned());
        }
        Ok(out)
    }

    #[test]
    fn rfc5424_messages_become_records() {
        let record = parse_message(
            b"<165>1 2026-12-07T06:00:00.123456Z web-1 nginx 4711 ID47 \
              [exampleSDID@32473 iut=\"3\" eventSource=\"App\"] \xef\xbb\xbfGET /a 200\n",
        )
        .unwrap();
        assert_eq!(record.line, "GET /a 200");
        assert_eq!(record.level.as_deref(), Some("notice"));
        assert_eq!(record.time_ns, Some(1_796_623_200_123_456_000));
        let labels: Vec<(&str, &str)> = record
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            labels,
            [
                ("app", "nginx"),
                ("exampleSDID@32473.eventSource", "App"),
                ("exampleSDID@32473.iut", "3"),
                ("facility", "local4"),
                ("host", "web-1"),
                ("msgid", "ID47"),
                ("procid", "4711"),
            ]
        );
    }

    #[test]
    fn rfc3164_messages_become_records() {
        let record = parse_message(b"<11>Dec  7 06:00:00 web-1 sshd[99]: failed login").unwrap();
        assert_eq!(record.line, "failed login");
        assert_eq!(record.level.as_deref(), Some("error"));
        assert!(record.time_ns.is_some());
        assert_eq!(record.labels["host"], "web-1");
        assert_eq!(record.labels["app"], "sshd");
        assert_eq!(record.labels["procid"], "99");
        assert_eq!(record.labels["facility"], "user");
    }

    #[test]
    fn nil_fields_are_left_out() {
        let record = parse_message(b"<14>1 - - - - - - just text").unwrap();
        assert_eq!(record.line, "just text");
        assert_eq!(record.time_ns, None);
        assert_eq!(
            record.labels.keys().collect::<Vec<_>>(),
            ["facility"],
            "{record:?}"
        );
    }

    #[test]
    fn every_severity_has_its_level() {
        let levels: Vec<&str> = (0..8)
            .map(|s| {
                let text = format!("<{s}>1 - h a - - - x");
                parse_message(text.as_bytes()).unwrap().level.unwrap()
            })
            .map(|l| match l.as_str() {
                "emerg" => "emerg",
                "alert" => "alert",
                "crit" => "crit",
                "error" => "error",
                "warn" => "warn",
                "notice" => "notice",
                "info" => "info",
                "debug" => "debug",
                other => panic!("unexpected level {other}"),
            })
            .collect();
        assert_eq!(
            levels,
            ["emerg", "alert", "crit", "error", "warn", "notice", "info", "debug"]
        );
    }

    #[test]
    fn text_without_pri_is_refused() {
        for bad in [
            &b"GET / HTTP/1.1"[..],
            b"",
            b"<>1 x",
            b"<1234>x",
            b"<192>x",
            b"<1a>x",
            b"\xff\xfe\x00garbage",
        ] {
            assert!(
                matches!(parse_message(bad), Err(IngestError::Invalid(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn lines_are_framed_by_lf() {
        let mut framer = Framer::new(100);
        assert_eq!(
            frames(&mut framer, b"<13>a\r\n\n<13>b\n<13>c").unwrap(),
            ["<13>a", "<13>b"]
        );
        assert_eq!(framer.framing(), Some(TcpFraming::NonTransparent));
        let mut buf = BytesMut::from(&b"<13>c\r"[..]);
        assert_eq!(framer.finish(&mut buf).unwrap().unwrap(), &b"<13>c"[..]);
    }

    #[test]
    fn octet_counted_frames_are_split_by_length() {
        let mut framer = Framer::new(100);
        assert_eq!(
            frames(&mut framer, b"5 <13>a\n7 <13>b\nc5 <1").unwrap(),
            ["<13>a", "<13>b\nc"]
        );
        assert_eq!(framer.framing(), Some(TcpFraming::OctetCounting));
        let mut buf = BytesMut::from(&b"5 <1"[..]);
        assert_eq!(framer.finish(&mut buf), Err(FrameError::BadCount));
    }

    #[test]
    fn bad_frames_are_errors() {
        let too_large = Err(FrameError::TooLarge { limit: 10 });
        assert_eq!(frames(&mut Framer::new(10), b"11 <13>abcdefg"), too_large);
        assert_eq!(frames(&mut Framer::new(10), b"1234567890"), too_large);
        assert_eq!(frames(&mut Framer::new(10), b"<13>abcdefghij"), too_large);
        assert_eq!(frames(&mut Framer::new(10), b"<13>abcdefghij\n"), too_large);
        // A count that lies: the next "frame" starts inside a message.
        assert_eq!(
            frames(&mut Framer::new(100), b"3 <13>abc"),
            Err(FrameError::BadCount)
        );
        assert_eq!(
            frames(&mut Framer::new(100), b"05 <13>"),
            Err(FrameError::BadCount)
        );
        assert_eq!(
            frames(&mut Framer::new(100), b"5x<13>a"),
            Err(FrameError::BadCount)
        );
    }

    #[test]
    fn channel_templates_fill_in_host_and_app() {
        let labels: Labels = [("host", "web-1.example"), ("app", "my app")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let channel = |t: &str, labels: &Labels| {
            ChannelTemplate::parse(t)
                .unwrap()
                .channel(labels)
                .to_string()
        };
        assert_eq!(channel("syslog", &labels), "syslog");
        assert_eq!(channel("{host}", &labels), "web-1.example");
        assert_eq!(
            channel("sys-{host}-{app}", &labels),
            "sys-web-1.example-my_app"
        );
        assert_eq!(channel("{app}", &Labels::new()), "unknown");
        let long: Labels = [("host".to_string(), "h".repeat(200))].into();
        assert_eq!(channel("x-{host}", &long).len(), 127);
        assert!(ChannelTemplate::parse("broadcast").is_err());
        assert!(ChannelTemplate::parse("log:{host}").is_err());
        assert!(ChannelTemplate::parse("").is_err());
        assert!(ChannelTemplate::parse("a b").is_err());
        assert_eq!(ChannelTemplate::default().to_string(), "syslog");
    }

    proptest! {
        #[test]
        fn hostile_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_message(&bytes);
            let mut framer = Framer::new(64);
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(frame)) = framer.next_frame(&mut buf) {
                prop_assert!(frame.len() <= 64);
                let _ = parse_message(&frame);
            }
            let _ = framer.finish(&mut buf);
        }

        #[test]
        fn messages_survive_any_split(
            lines in proptest::collection::vec("[a-z][a-z ]{0,19}", 1..8),
            octets in any::<bool>(),
            cut in 0usize..200,
        ) {
            let mut wire = Vec::new();
            for line in &lines {
                let msg = format!("<13>1 - h a - - - {line}");
                if octets {
                    wire.extend_from_slice(format!("{} {msg}", msg.len()).as_bytes());
                } else {
                    wire.extend_from_slice(format!("{msg}\n").as_bytes());
                }
            }
            let cut = cut.min(wire.len());
            let mut framer = Framer::new(1000);
            let mut buf = BytesMut::from(&wire[..cut]);
            let mut got = Vec::new();
            while let Some(frame) = framer.next_frame(&mut buf).unwrap() {
                got.push(parse_message(&frame).unwrap().line);
            }
            buf.extend_from_slice(&wire[cut..]);
            while let Some(frame) = framer.next_frame(&mut buf).unwrap() {
                got.push(parse_message(&frame).unwrap().line);
            }
            let want: Vec<String> = lines.iter().map(|l| l.trim().to_string()).collect();
            let got: Vec<String> = got.iter().map(|l| l.trim().to_string()).collect();
            prop_assert_eq!(got, want);
        }
    }
}
