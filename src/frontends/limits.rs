//! Session limits a frontend enforces before a login: sessions in total and per source address, counted with RAII permits.
//!
//! A frontend asks the [`ConnectionGate`] for a [`SessionPermit`] as soon as it
//! accepts a connection and holds it for the life of the session; dropping the
//! permit frees the slot. A refused connection is closed before any protocol
//! work (no SSH key exchange, no FTP greeting). Refusals are reported as the
//! first or a repeat one, so a flood from one address logs one line, not one per
//! connection.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The limits of `[frontends]` in lafs.toml.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// Sessions open at once, from all addresses together.
    pub max_sessions: usize,
    /// Sessions open at once from one address.
    pub max_sessions_per_address: usize,
    /// Time from connecting to a successful login (OpenSSH's `LoginGraceTime`).
    pub login_grace: Duration,
    /// Time an SFTP session may wait for its next request before it is closed.
    pub idle_timeout: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            max_sessions: 256,
            max_sessions_per_address: 64,
            login_grace: Duration::from_secs(120),
            idle_timeout: Duration::from_secs(600),
        }
    }
}

/// Why a connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The total was reached.
    #[error("too many sessions ({0} open)")]
    TooManySessions(usize),
    /// The address already holds its share.
    #[error("too many sessions from this address ({0} open)")]
    TooManyFromAddress(usize),
}

/// A refused connection: the reason, and whether it is the first refusal since a slot was last freed
/// (log it) or a repeat (stay quiet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// Why.
    pub reason: Refusal,
    /// The first refusal of its kind since the count last went down.
    pub first: bool,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    total_refusal_logged: bool,
    by_address: HashMap<IpAddr, AddressCount>,
}

#[derive(Debug, Default)]
struct AddressCount {
    sessions: usize,
    refusal_logged: bool,
}

/// Counts open sessions and admits new ones within the limits.
#[derive(Debug)]
pub struct ConnectionGate {
    max_sessions: usize,
    max_per_address: usize,
    counts: Mutex<Counts>,
}

/// One admitted session; dropping it frees the slot.
#[derive(Debug)]
pub struct SessionPermit {
    gate: Arc<ConnectionGate>,
    address: IpAddr,
}

impl ConnectionGate {
    /// A gate admitting at most `max_sessions` sessions, `max_per_address` of them from one address.
    pub fn new(max_sessions: usize, max_per_address: usize) -> Arc<Self> {
        Arc::new(ConnectionGate {
            max_sessions,
            max_per_address,
            counts: Mutex::new(Counts::default()),
        })
    }

    /// A gate for `limits`.
    pub fn for_limits(limits: &SessionLimits) -> Arc<Self> {
        Self::new(limits.max_sessions, limits.max_sessions_per_address)
    }

    fn counts(&self) -> MutexGuard<'_, Counts> {
        match self.counts.lock() {
            Ok(counts) => counts,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// A permit for a session from `address`, or why not.
    pub fn admit(self: &Arc<Self>, address: IpAddr) -> Result<SessionPermit, Refused> {
        // An IPv4 client on a dual-stack socket is the same client as over IPv4.
        let address = address.to_canonical();
        let mut counts = self.counts();
        let total = counts.total;
        if total >= self.max_sessions {
            let first = !std::mem::replace(&mut counts.total_refusal_logged, true);
            return Err(Refused {
                reason: Refusal::TooManySessions(total),
                first,
            });
        }
        let entry = counts.by_address.entry(address).or_default();
        if entry.sessions >= self.max_per_address {
            let first = !std::mem::replace(&mut entry.refusal_logged, true);
            return Err(Refused {
                reason: Refusal::TooManyFromAddress(entry.sessions),
                first,
            });
        }
        entry.sessions += 1;
        counts.total += 1;
        Ok(SessionPermit {
            gate: self.clone(),
            address,
        })
    }

    /// Sessions open now.
    pub fn sessions(&self) -> usize {
        self.counts().total
    }

    /// Sessions open now from `address`.
    pub fn sessions_from(&self, address: IpAddr) -> usize {
        self.counts()
            .by_address
            .get(&address.to_canonical())
            .map_or(0, |entry| entry.sessions)
    }

    fn release(&self, address: IpAddr) {
        let mut counts = self.counts();
        counts.total = counts.total.saturating_sub(1);
        counts.total_refusal_logged = false;
        if let Some(entry) = counts.by_address.get_mut(&address) {
            entry.sessions = entry.sessions.saturating_sub(1);
            entry.refusal_logged = false;
            if entry.sessions == 0 {
                counts.by_address.remove(&address);
            }
        }
    }
}

impl SessionPermit {
    /// The address the session came from.
    pub fn address(&self) -> IpAddr {
        self.address
    }
}

impl Drop for SessionPermit {
    fn drop(&mut self) {
        self.gate.release(self.address);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn per_address_limit_refuses_the_extra_session_and_a_freed_slot_admits_again() {
        let gate = ConnectionGate::new(10, 2);
        let a = gate.admit(ip("10.0.0.1")).unwrap();
        let _b = gate.admit(ip("10.0.0.1")).unwrap();
        let refused = gate.admit(ip("10.0.0.1")).unwrap_err();
        assert_eq!(refused.reason, Refusal::TooManyFromAddress(2));
        assert!(refused.first);
        assert!(
            !gate.admit(ip("10.0.0.1")).unwrap_err().first,
            "a repeat is not logged again"
        );
        // Another address is not affected.
        let _other = gate.admit(ip("10.0.0.2")).unwrap();
        assert_eq!(gate.sessions(), 3);
        drop(a);
        assert_eq!(gate.sessions_from(ip("10.0.0.1")), 1);
        let _c = gate.admit(ip("10.0.0.1")).unwrap();
        assert!(
            gate.admit(ip("10.0.0.1")).unwrap_err().first,
            "logged again after a slot was freed"
        );
    }

    #[test]
    fn total_limit_counts_every_address_and_entries_are_forgotten_when_empty() {
        let gate = ConnectionGate::new(2, 2);
        let a = gate.admit(ip("10.0.0.1")).unwrap();
        let b = gate.admit(ip("10.0.0.2")).unwrap();
        let refused = gate.admit(ip("10.0.0.3")).unwrap_err();
        assert_eq!(refused.reason, Refusal::TooManySessions(2));
        assert!(refused.first);
        assert!(!gate.admit(ip("10.0.0.4")).unwrap_err().first);
        drop((a, b));
        assert_eq!(gate.sessions(), 0);
        assert!(gate.counts().by_address.is_empty());
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_their_ipv4_address() {
        let gate = ConnectionGate::new(10, 1);
        let _a = gate.admit(ip("127.0.0.1")).unwrap();
        assert!(gate.admit(ip("::ffff:127.0.0.1")).is_err());
        assert_eq!(gate.sessions_from(ip("::ffff:127.0.0.1")), 1);
    }
}
