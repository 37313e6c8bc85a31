//! `--max-connections-per-ip`: open SSE streams allowed per client
//! address, over every protocol (HTTP/1.1 lean path, hyper, HTTP/2 and
//! h2c, TLS or not). A slot is taken before the request is routed and kept
//! by the response body while it streams; any other answer gives it back
//! at once. An address's entry exists only while it holds a stream, so
//! refused or finished requests leave nothing behind.
//!
//! The address is the TCP peer's: behind a reverse proxy every client
//! shares the proxy's address, so leave the limit off there (or set it to
//! the proxy's share).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Counts open SSE streams per client address.
#[derive(Debug)]
pub struct PerIpStreams {
    limit: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One open stream of one address; dropping it frees the slot.
#[derive(Debug)]
pub struct IpSlot {
    streams: Arc<PerIpStreams>,
    ip: IpAddr,
}

impl PerIpStreams {
    /// A counter allowing `limit` streams per address; `0` is no limit.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(PerIpStreams {
            limit,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// Whether a limit is set.
    pub fn enabled(&self) -> bool {
        self.limit > 0
    }

    /// The configured limit (`0`: none).
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Takes a slot for `ip`, or `None` when it holds the limit already.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(ip).or_insert(0);
        if *count >= self.limit {
            if *count == 0 {
                open.remove(&ip);
            }
            return None;
        }
        *count += 1;
        Some(IpSlot {
            streams: self.clone(),
            ip,
        })
    }

    /// Streams `ip` holds now.
    #[cfg(test)]
    pub fn open(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(&ip).copied().unwrap_or(0)
    }

    /// Addresses holding at least one stream.
    #[cfg(test)]
    pub fn addresses(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.streams.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_per_address_and_freed() {
        let streams = PerIpStreams::new(2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "::1".parse().unwrap();
        let one = streams.acquire(a).unwrap();
        let two = streams.acquire(a).unwrap();
        assert!(streams.acquire(a).is_none());
        let other = streams.acquire(b).unwrap();
        assert_eq!(streams.open(a), 2);
        drop(one);
        let three = streams.acquire(a).unwrap();
        drop((two, three, other));
        assert_eq!(streams.addresses(), 0, "nothing left behind");
    }

    #[test]
    fn a_zero_limit_refuses_without_leaving_an_entry() {
        let streams = PerIpStreams::new(0);
        assert!(!streams.enabled());
        assert!(streams.acquire("10.0.0.1".parse().unwrap()).is_none());
        assert_eq!(streams.addresses(), 0);
    }
}
