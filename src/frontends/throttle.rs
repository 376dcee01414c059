//! Failed-login throttling per source address, shared by every frontend.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Counts recent failed logins per address and refuses an address that failed too often.
#[derive(Debug)]
pub struct LoginThrottle {
    max_failures: u32,
    window: Duration,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle::new(10, Duration::from_secs(60))
    }
}

impl LoginThrottle {
    /// At most `max_failures` failures per `window` per address; after that its logins are refused
    /// without being checked until the window has passed since its first failure.
    pub fn new(max_failures: u32, window: Duration) -> Self {
        LoginThrottle {
            max_failures,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, (u32, Instant)>> {
        match self.failures.lock() {
            Ok(table) => table,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Whether `addr` may try to log in now.
    pub fn allows(&self, addr: IpAddr) -> bool {
        let mut table = self.table();
        match table.get(&addr) {
            Some((_, since)) if since.elapsed() >= self.window => {
                table.remove(&addr);
                true
            }
            Some((count, _)) => *count < self.max_failures,
            None => true,
        }
    }

    /// Records a failed login from `addr`.
    pub fn failed(&self, addr: IpAddr) {
        let mut table = self.table();
        if table.len() > 100_000 {
            // Bounded memory under a distributed attack: forget expired entries.
            let window = self.window;
            table.retain(|_, (_, since)| since.elapsed() < window);
        }
        let entry = table.entry(addr).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= self.window {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }

    /// Forgets `addr`'s failures after a successful login.
    pub fn succeeded(&self, addr: IpAddr) {
        self.table().remove(&addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_after_too_many_failures_and_forgets_after_the_window() {
        let throttle = LoginThrottle::new(3, Duration::from_millis(200));
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert!(throttle.allows(a));
            throttle.failed(a);
        }
        assert!(!throttle.allows(a));
        assert!(throttle.allows(b));
        std::thread::sleep(Duration::from_millis(250));
        assert!(throttle.allows(a));
        throttle.failed(b);
        throttle.succeeded(b);
        assert!(throttle.allows(b));
    }
}
