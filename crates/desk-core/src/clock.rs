//! Time, as unix milliseconds, from one injectable source.
//!
//! Every time the desk stores (message times, 対応開始日時, reply-token windows, passcode
//! expiries, throttles) comes from a [`Clock`], so tests move time with a [`ManualClock`]
//! instead of sleeping — e.g. past the reply window (M3) or a passcode's expiry (L2).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The machine's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            // A clock set before 1970: report it as negative rather than panic.
            Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
        }
    }
}

/// A clock that only moves when told to; shareable across threads.
#[derive(Debug, Default)]
pub struct ManualClock {
    now_ms: AtomicI64,
}

impl ManualClock {
    pub fn new(start_ms: i64) -> Self {
        ManualClock {
            now_ms: AtomicI64::new(start_ms),
        }
    }

    /// Moves the clock forward (or back, with a negative step); returns the new time.
    pub fn advance(&self, by_ms: i64) -> i64 {
        self.now_ms.fetch_add(by_ms, Ordering::SeqCst) + by_ms
    }

    pub fn set(&self, now_ms: i64) {
        self.now_ms.store(now_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now_ms(&self) -> i64 {
        (**self).now_ms()
    }
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now_ms(&self) -> i64 {
        (**self).now_ms()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(1_000);
        assert_eq!(clock.now_ms(), 1_000);
        assert_eq!(clock.advance(50_000), 51_000);
        assert_eq!(clock.now_ms(), 51_000);
        clock.set(7);
        assert_eq!(clock.now_ms(), 7);
    }

    #[test]
    fn shared_as_a_trait_object() {
        let manual = Arc::new(ManualClock::new(5));
        let shared: Arc<dyn Clock> = manual.clone();
        manual.advance(10);
        assert_eq!(shared.now_ms(), 15);
        fn read(clock: impl Clock) -> i64 {
            clock.now_ms()
        }
        assert_eq!(read(&*manual), 15);
        assert_eq!(read(manual), 15);
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now_ms() > 1_577_836_800_000);
    }
}
