//! The Lua scripts that make each Redis step atomic, and their replies.
//!
//! Redis runs a script as one command: nothing else happens between its
//! first and last call. That is what keeps numbering, history and the
//! node feed from ever disagreeing (the same design as Centrifugo's
//! `broker_history_add_stream.lua`), and what makes an epoch change a
//! single step.

use redis::Value;

/// Publishes one or more events of one or more channels, as one unit.
///
/// KEYS: epoch, seq, feed, channel set, then the stream of each channel.
/// ARGV: the epoch the node is on, `--history`, feed length,
/// `--history-ttl` in ms (0: none), the number of channels `k`, the
/// publisher's origin (`ingest`, or empty for a client), then (name,
/// channel limit) per channel, then (channel index from 1, type, data) per
/// event.
///
/// Refuses (`{'epoch'}`) when the node is on another epoch than Redis, so
/// no node can hand out ids of a history line that is gone, and
/// (`{'full'}`) when a channel that does not exist yet would make the
/// channel set pass its limit: before anything is written. Otherwise
/// takes consecutive numbers with `INCRBY`, appends each event to the feed
/// (with an `o` field naming a non-empty origin, so that every node's
/// replica counts the channels it brings on the ingest budget) and to its
/// channel's stream (both with the number as stream id, both
/// trimmed with `MAXLEN ~`), and records each channel's newest number in
/// the channel set; a channel's stream expires after `--history-ttl`
/// without a publish. Replies `{'ok', first, last}`, or `{'behind', why}`
/// when the feed refused the number (the sequence went backwards under the
/// node: it must resync).
pub(super) const PUBLISH: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {'epoch'} end
local k = tonumber(ARGV[5])
local made = 0
for c = 1, k do
  if not redis.call('ZSCORE', KEYS[4], ARGV[5 + 2 * c]) then
    if redis.call('ZCARD', KEYS[4]) + made >= tonumber(ARGV[6 + 2 * c]) then return {'full'} end
    made = made + 1
  end
end
local origin = ARGV[6]
local base = 7 + 2 * k
local n = (#ARGV - base + 1) / 3
local last = redis.call('INCRBY', KEYS[2], n)
local first = last - n + 1
local newest = {}
for i = 0, n - 1 do
  local id = '0-' .. string.format('%d', first + i)
  local c = tonumber(ARGV[base + 3 * i])
  local t, d = ARGV[base + 1 + 3 * i], ARGV[base + 2 + 3 * i]
  local name = ARGV[5 + 2 * c]
  local r
  if origin == '' then
    r = redis.pcall('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], id, 'c', name, 't', t, 'd', d)
  else
    r = redis.pcall('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], id, 'c', name, 't', t, 'd', d, 'o', origin)
  end
  if type(r) == 'table' and r.err then return {'behind', r.err} end
  redis.pcall('XADD', KEYS[4 + c], 'MAXLEN', '~', ARGV[2], id, 't', t, 'd', d)
  newest[c] = first + i
end
for c = 1, k do
  if newest[c] then
    if tonumber(ARGV[4]) > 0 then redis.call('PEXPIRE', KEYS[4 + c], ARGV[4]) end
    redis.call('ZADD', KEYS[4], newest[c], ARGV[5 + 2 * c])
  end
end
return {'ok', first, last}
"#;

/// Drops channels that are gone from the channel set: their stream expired
/// (`--history-ttl`), no node claims them, and they are not `broadcast`.
///
/// KEYS: channel set, then per candidate its stream and its owner key.
/// ARGV: the candidates' names. Every key is declared (Redis Cluster
/// refuses keys a script makes up). Replies the number dropped.
pub(super) const PRUNE: &str = r#"
local dropped = 0
for i, name in ipairs(ARGV) do
  if name ~= 'broadcast'
    and redis.call('EXISTS', KEYS[2 * i]) == 0
    and redis.call('EXISTS', KEYS[2 * i + 1]) == 0 then
    dropped = dropped + redis.call('ZREM', KEYS[1], name)
  end
end
return dropped
"#;

/// Agrees on the epoch: run at connect and by every liveness probe.
///
/// KEYS: epoch, seq, the feed of the node's epoch, the primary record.
/// ARGV: the epoch the node is on (`''` for none), the highest number the
/// node has seen on it, a fresh random tag, and in cluster mode (else
/// `''`) the record `REPLID HOST:PORT` of the primary this runs on and the
/// replication id of the recorded primary when the switch from it is
/// proven to have kept every write (`''` when not).
///
/// Cluster mode: when the recorded primary is another one (a failover, or
/// a restart) and the switch is not proven complete, the data may be a
/// copy that missed the last writes (the sequence may be below numbers
/// already handed out), so a new epoch starts as when Redis lost data.
/// The record is then this primary, so only the first node to notice
/// starts the new epoch; the others adopt it.
///
/// When Redis has an epoch that is not the node's, or is the node's and
/// its sequence is not below what the node saw, the node adopts it. When
/// Redis has no epoch (first start, or restarted empty) or its sequence is
/// below what the node saw (restarted from a file that missed the last
/// writes), a new epoch starts, numbered on from the highest number known,
/// and the lost line's feed is deleted. Replies `{epoch, seq}`; an epoch
/// reads `TAG:BASE` (BASE: the number it started after).
pub(super) const SYNC: &str = r#"
local cur = redis.call('GET', KEYS[1])
local seq = tonumber(redis.call('GET', KEYS[2]) or '0')
local seen = tonumber(ARGV[2])
local lost = false
if ARGV[4] ~= '' then
  local rec = redis.call('GET', KEYS[4])
  local old = rec and string.match(rec, '^(%S+)')
  local now = string.match(ARGV[4], '^(%S+)')
  if old and old ~= now and old ~= ARGV[5] then lost = true end
  if rec ~= ARGV[4] then redis.call('SET', KEYS[4], ARGV[4]) end
end
if cur and not lost and (cur ~= ARGV[1] or seq >= seen) then
  return {cur, string.format('%d', seq)}
end
local base = math.max(seq, seen)
local new = ARGV[3] .. ':' .. string.format('%d', base)
redis.call('SET', KEYS[2], string.format('%d', base))
redis.call('SET', KEYS[1], new)
if cur then redis.call('DEL', KEYS[3]) end
return {new, string.format('%d', base)}
"#;

/// Reads retained events of one channel with the stream's trim point.
///
/// KEYS: channel stream. ARGV: after (exclusive), upto (inclusive), count,
/// `fwd` (oldest first) or `rev` (newest first), a byte budget.
///
/// Replies `{trimmed, entries, more}`. `entries` stop before the one whose
/// field values would take the total past the budget (the first entry is
/// always kept, so a read always progresses): a node never takes more than
/// about the budget off Redis in one read however large the events are,
/// and `more` is 1 when that cut the list short of `count`. `trimmed` is
/// the number below which events are gone,
/// so "no events there" and "events gone" are told apart. From `XINFO
/// STREAM` (Redis 7): when more entries were added than the stream holds,
/// everything below its first entry was trimmed; `max-deleted-entry-id`
/// covers `XDEL`. (Trimming does not record the last entry it removed, so
/// the number is the first kept entry's minus one: a cursor between the
/// channel's last trimmed event and its first kept one gets a `reset` it
/// could have been spared.)
pub(super) const HISTORY: &str = r#"
local trimmed = 0
if redis.call('EXISTS', KEYS[1]) == 1 then
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  local f = {}
  for i = 1, #info, 2 do f[info[i]] = info[i + 1] end
  local function seq(id)
    return tonumber(type(id) == 'string' and string.match(id, '^0%-(%d+)$') or '0') or 0
  end
  local first = f['recorded-first-entry-id']
  if first == nil and type(f['first-entry']) == 'table' then first = f['first-entry'][1] end
  if tonumber(f['entries-added'] or 0) > tonumber(f['length'] or 0) and first then
    trimmed = math.max(trimmed, seq(first) - 1)
  end
  trimmed = math.max(trimmed, seq(f['max-deleted-entry-id']))
end
local deleted = '0-' .. string.format('%d', trimmed)
local entries
if ARGV[4] == 'rev' then
  entries = redis.call('XREVRANGE', KEYS[1], '0-' .. ARGV[2], '(0-' .. ARGV[1], 'COUNT', ARGV[3])
else
  entries = redis.call('XRANGE', KEYS[1], '(0-' .. ARGV[1], '0-' .. ARGV[2], 'COUNT', ARGV[3])
end
local budget = tonumber(ARGV[5])
local total = 0
local more = 0
for i = 1, #entries do
  local fields = entries[i][2]
  for j = 2, #fields, 2 do total = total + #fields[j] end
  if total > budget and i > 1 then
    for k = #entries, i, -1 do entries[k] = nil end
    more = 1
    break
  end
end
return {deleted, entries, more}
"#;

/// Takes or refreshes a claim (a log stream name, a lease).
///
/// KEYS: claim key, channel set. ARGV: this process's instance id, the
/// claim's JSON value (with `instance` and `node`), TTL in ms, a channel to
/// list in the channel set (`''` for none).
///
/// Replies 1 when the claim is this process's now, or the holder's JSON.
pub(super) const CLAIM: &str = r#"
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, held = pcall(cjson.decode, cur)
  if ok and type(held) == 'table' and held.instance ~= ARGV[1] then return cur end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
if ARGV[4] ~= '' then redis.call('ZADD', KEYS[2], 'NX', 0, ARGV[4]) end
return 1
"#;

/// Gives a claim up if this process holds it. KEYS: claim key.
/// ARGV: instance id.
pub(super) const RELEASE: &str = r#"
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, held = pcall(cjson.decode, cur)
  if ok and type(held) == 'table' and held.instance == ARGV[1] then redis.call('DEL', KEYS[1]) end
end
return 1
"#;

/// The compiled scripts (each knows its SHA1; `EVALSHA` falls back to
/// loading the script when Redis does not know it, e.g. after a restart).
pub(super) struct Scripts {
    /// See [`PUBLISH`].
    pub publish: redis::Script,
    /// See [`SYNC`].
    pub sync: redis::Script,
    /// See [`HISTORY`].
    pub history: redis::Script,
    /// See [`CLAIM`].
    pub claim: redis::Script,
    /// See [`RELEASE`].
    pub release: redis::Script,
    /// See [`PRUNE`].
    pub prune: redis::Script,
}

impl Scripts {
    /// Compiles every script.
    pub(super) fn new() -> Self {
        Scripts {
            publish: redis::Script::new(PUBLISH),
            sync: redis::Script::new(SYNC),
            history: redis::Script::new(HISTORY),
            claim: redis::Script::new(CLAIM),
            release: redis::Script::new(RELEASE),
            prune: redis::Script::new(PRUNE),
        }
    }
}

/// A reply that is not what the script returns: Redis is not what we
/// expect (another program uses the prefix, or a proxy mangles replies).
pub(super) fn unexpected(what: &str, value: &Value) -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "unexpected reply",
        format!("{what}: {value:?}"),
    ))
}

/// The text of a string reply.
pub(super) fn text(value: &Value) -> Option<&str> {
    match value {
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok(),
        Value::SimpleString(s) => Some(s),
        Value::VerbatimString { text, .. } => Some(text),
        _ => None,
    }
}

/// An integer reply, or a string holding one.
pub(super) fn int(value: &Value) -> Option<u64> {
    match value {
        Value::Int(n) => u64::try_from(*n).ok(),
        other => text(other)?.parse().ok(),
    }
}

/// The items of an array reply.
pub(super) fn items(value: &Value) -> Option<&[Value]> {
    match value {
        Value::Array(items) | Value::Set(items) => Some(items),
        _ => None,
    }
}

/// The number of a stream entry id `0-N` (every id tailcast writes).
pub(super) fn entry_seq(id: &str) -> Option<u64> {
    let (ms, seq) = id.split_once('-')?;
    if ms != "0" {
        return None;
    }
    seq.parse().ok()
}

/// One stream entry: its number and its fields as (name, value) pairs.
pub(super) struct Entry {
    /// The event's number (from the entry id `0-N`).
    pub seq: u64,
    /// Field names and values.
    pub fields: Vec<(String, String)>,
}

impl Entry {
    /// The value of field `name` (empty if absent).
    pub(super) fn field(&self, name: &str) -> &str {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// Parses the entries of one stream as `XRANGE` returns them:
/// `[[id, [field, value, ...]], ...]`. Entries whose id is not `0-N`
/// (written by something else) are skipped.
pub(super) fn entries(value: &Value) -> Result<Vec<Entry>, redis::RedisError> {
    let list = items(value).ok_or_else(|| unexpected("stream entries", value))?;
    let mut out = Vec::with_capacity(list.len());
    for entry in list {
        let parts = items(entry).ok_or_else(|| unexpected("stream entry", entry))?;
        let [id, fields] = parts else {
            return Err(unexpected("stream entry", entry));
        };
        let Some(seq) = text(id).and_then(entry_seq) else {
            continue;
        };
        let mut pairs = Vec::with_capacity(3);
        match fields {
            Value::Map(map) => {
                for (k, v) in map {
                    pairs.push((lossy(k), lossy(v)));
                }
            }
            other => {
                let flat = items(other).ok_or_else(|| unexpected("entry fields", other))?;
                for pair in flat.chunks(2) {
                    if let [k, v] = pair {
                        pairs.push((lossy(k), lossy(v)));
                    }
                }
            }
        }
        out.push(Entry { seq, fields: pairs });
    }
    Ok(out)
}

fn lossy(value: &Value) -> String {
    match value {
        Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        other => text(other).unwrap_or_default().to_string(),
    }
}

/// Parses an `XREAD` reply for one stream: nil (nothing new), RESP2
/// `[[key, entries]]` or RESP3 `{key: entries}`.
pub(super) fn xread_entries(value: &Value) -> Result<Vec<Entry>, redis::RedisError> {
    match value {
        Value::Nil => Ok(Vec::new()),
        Value::Map(map) => match map.first() {
            Some((_, list)) => entries(list),
            None => Ok(Vec::new()),
        },
        other => {
            let streams = items(other).ok_or_else(|| unexpected("XREAD", other))?;
            match streams.first() {
                None => Ok(Vec::new()),
                Some(stream) => match items(stream) {
                    Some([_key, list]) => entries(list),
                    _ => Err(unexpected("XREAD stream", stream)),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn stream_ids_are_numbers() {
        assert_eq!(entry_seq("0-17"), Some(17));
        assert_eq!(entry_seq("5-17"), None);
        assert_eq!(entry_seq("garbage"), None);
    }

    #[test]
    fn xread_replies_parse_in_both_protocols() {
        let entry = Value::Array(vec![
            bulk("0-3"),
            Value::Array(vec![bulk("c"), bulk("news"), bulk("d"), bulk("hi")]),
        ]);
        let foreign = Value::Array(vec![
            bulk("1700000000000-0"),
            Value::Array(vec![bulk("x"), bulk("y")]),
        ]);
        let list = Value::Array(vec![entry, foreign]);
        let resp2 = Value::Array(vec![Value::Array(vec![bulk("feed"), list.clone()])]);
        let resp3 = Value::Map(vec![(bulk("feed"), list)]);
        for reply in [resp2, resp3] {
            let parsed = xread_entries(&reply).unwrap();
            assert_eq!(parsed.len(), 1);
            assert_eq!(parsed[0].seq, 3);
            assert_eq!(parsed[0].field("c"), "news");
            assert_eq!(parsed[0].field("d"), "hi");
            assert_eq!(parsed[0].field("t"), "");
        }
        assert!(xread_entries(&Value::Nil).unwrap().is_empty());
        assert!(xread_entries(&Value::Int(3)).is_err());
    }
}
