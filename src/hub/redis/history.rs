//! `/api/history` with `--redis`: read from the channel's stream in Redis
//! (`P:ch:NAME`), newest first, so every node answers the same whatever
//! its replica holds.
//!
//! The stream is read backwards in chunks (`XREVRANGE ... COUNT`, inside
//! the history script, which also stops a chunk at the bytes left to look
//! at) and filtered here. One request looks at most [`SCAN_BUDGET`] bytes
//! of event data, as the write-ahead log's does: a
//! rare match then gives a page with fewer than `limit` events and a
//! `next_before` to go on from, never a request that reads a whole stream.

use super::{link, Line, Node};
use crate::hub::{ChannelName, HistoryEvent, HistoryPage, HubError};

/// Most bytes of event data (and types) one request looks at: the same
/// figure as the write-ahead log's [`crate::wal::SCAN_BUDGET`].
pub(super) const SCAN_BUDGET: u64 = crate::wal::SCAN_BUDGET;

/// Entries read from Redis per round trip.
const CHUNK: usize = 512;

/// The number of `id` if it is exactly an id of `line` (`TAG-SEQ`, the
/// number without sign or leading zero).
fn seq_of(line: &Line, id: &str) -> Option<u64> {
    crate::hub::EventId::parse(id)
        .filter(|id| id.tag == line.tag)
        .map(|id| id.seq)
}

/// Events of `channel` of the current epoch older than `before` (or the
/// newest), newest first, whose data passes `filter`: at most `limit`.
///
/// # Errors
/// [`HubError::UnknownId`] for a `before` that is not an id of the current
/// epoch; [`HubError::Unavailable`] when Redis does not answer.
pub(crate) async fn read(
    node: &Node,
    channel: &ChannelName,
    before: Option<&str>,
    limit: usize,
    filter: &(dyn Fn(&str) -> bool + Sync),
) -> Result<HistoryPage, HubError> {
    let line = node.replica.line();
    let mut upto = match before {
        Some(id) => match seq_of(&line, id) {
            Some(seq) => seq.saturating_sub(1),
            None => return Err(HubError::UnknownId(id.chars().take(64).collect())),
        },
        None => u64::MAX,
    };
    let mut page = HistoryPage::default();
    let mut scanned = 0u64;
    // Entries at or below the epoch's base belong to a lost line of history.
    while limit > 0 && upto > line.base {
        let budget = SCAN_BUDGET.saturating_sub(scanned);
        let read =
            link::history(node, channel.as_str(), line.base, upto, CHUNK, true, budget).await?;
        let exhausted = read.entries.len() < CHUNK && !read.more;
        let entries = read.entries;
        // Oldest first as read: walk them newest first.
        for entry in entries.iter().rev() {
            upto = entry.seq.saturating_sub(1);
            let data = entry.field("d");
            scanned += (data.len() + entry.field("t").len()) as u64;
            if filter(data) {
                let event_type = match entry.field("t") {
                    "" => crate::sse::DEFAULT_EVENT_TYPE,
                    t => t,
                };
                page.events.push(HistoryEvent {
                    id: line.id(entry.seq).to_string(),
                    channel: channel.to_string(),
                    event_type: event_type.to_string(),
                    data: data.to_string(),
                });
                if page.events.len() == limit {
                    page.next_before = Some(line.id(entry.seq).to_string());
                    return Ok(page);
                }
            }
            if scanned >= SCAN_BUDGET {
                // Go on below the last entry looked at.
                page.next_before = (upto > line.base).then(|| line.id(entry.seq).to_string());
                return Ok(page);
            }
        }
        if exhausted {
            break;
        }
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exact_ids_of_the_current_epoch_are_positions() {
        let line = Line::parse("abc:10").unwrap();
        assert_eq!(seq_of(&line, "abc-12"), Some(12));
        for bad in [
            "abc-012", "abc-", "abc-+1", "xyz-12", "abc12", " abc-12", "abc-1 ",
        ] {
            assert_eq!(seq_of(&line, bad), None, "{bad}");
        }
    }
}
