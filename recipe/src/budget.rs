//! A process-wide bound on the memory of the large encoders: liblzma's (an
//! xz encoder at preset 6 holds about 94 MiB of match finder, plus a block
//! of input in multi-threaded mode) and, for a caller that asks, zstd's at
//! its slow levels. Objects are analysed and rebuilt on every core; without
//! a bound, two or three such encoders at once took an agent past its
//! 256 MiB. A caller reserves what its encoder will hold before making it
//! and gives it back when the [`Permit`] drops; a reservation waits while
//! others hold the budget, and one larger than the whole budget runs alone.
//! A thread holds at most one permit at a time, so waiting cannot deadlock.

use std::sync::{Condvar, Mutex};

/// Bytes of encoder state held at once by this process: one xz encoder at
/// preset 6 or one zstd encoder at level 19, or several smaller ones.
pub const BUDGET: u64 = 160 << 20;

static HELD: Mutex<u64> = Mutex::new(0);
static FREED: Condvar = Condvar::new();

/// Encoder memory reserved until dropped.
#[derive(Debug)]
pub struct Permit(u64);

/// Reserves `bytes` (at most [`BUDGET`]) of the budget, waiting until they
/// fit beside what others hold.
pub fn reserve(bytes: u64) -> Permit {
    let bytes = bytes.min(BUDGET);
    // A poisoned lock only means another thread panicked while holding it;
    // the count it guards is still whole (updated in one statement).
    let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
    while *held > 0 && *held + bytes > BUDGET {
        held = FREED.wait(held).unwrap_or_else(|e| e.into_inner());
    }
    *held += bytes;
    Permit(bytes)
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
        *held -= self.0;
        FREED.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_past_the_budget_wait_for_a_release() {
        let first = reserve(BUDGET / 2);
        let second = reserve(BUDGET / 2);
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let p = reserve(BUDGET / 4);
            tx.send(()).unwrap();
            drop(p);
        });
        // Whatever other tests hold, the budget is full: the third waits.
        assert!(rx
            .recv_timeout(std::time::Duration::from_millis(200))
            .is_err());
        drop(first);
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("a release lets the waiter in");
        waiter.join().unwrap();
        drop(second);
        // One larger than the budget runs alone, capped.
        let big = reserve(u64::MAX);
        assert_eq!(big.0, BUDGET);
    }
}
