//! Pacing datagrams to the diode's line rate.

use std::time::Duration;

/// Paces packets to a line rate.
///
/// A token bucket that holds at most `BURST` worth of sending: a sender the
/// scheduler held up (a sleep that overran, a busy machine) makes up that
/// much at once, so the rate holds; longer idle time (waiting for encoding,
/// say) is not made up by a long burst above the line rate, which a diode
/// would drop. Without I/O: [`Pacer::due`] takes the time since the start
/// and says how long to wait, so it runs on a simulated clock in tests.
pub(super) struct Pacer {
    /// Bits sent (or forfeited) so far, IP and UDP headers included.
    sent_bits: f64,
    rate: f64,
    /// Time given up because the sender fell more than `BURST` behind.
    pub(super) forfeited: Duration,
}

/// The most a sender may make up at once after it fell behind the line rate.
const BURST: Duration = Duration::from_millis(5);

/// A wait shorter than this is not slept (the datagram goes out at once,
/// and the bucket takes the difference back from the next ones).
const MIN_SLEEP: Duration = Duration::from_micros(200);

impl Pacer {
    pub(super) fn new(rate_bps: u64) -> Pacer {
        Pacer {
            sent_bits: 0.0,
            rate: rate_bps as f64,
            forfeited: Duration::ZERO,
        }
    }

    /// Accounts a datagram of `datagram_len` bytes about to be sent at
    /// `now` (since the start); returns how long to wait before sending it.
    pub(super) fn due(&mut self, now: Duration, datagram_len: usize) -> Duration {
        let floor = (now.as_secs_f64() - BURST.as_secs_f64()) * self.rate;
        if self.sent_bits < floor {
            self.forfeited += Duration::from_secs_f64((floor - self.sent_bits) / self.rate);
            self.sent_bits = floor;
        }
        self.sent_bits += ((datagram_len + 28) * 8) as f64;
        let due = Duration::from_secs_f64(self.sent_bits / self.rate);
        match due.checked_sub(now) {
            Some(wait) if wait > MIN_SLEEP => wait,
            _ => Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the pacer on a simulated clock: each datagram costs `cost` of
    /// the sender's time, a sleep overruns by `overrun`, and at `stall` the
    /// sender is held up for a while. Returns (seconds to send `n`
    /// datagrams, the pacer's forfeited time).
    fn simulate(
        rate: u64,
        n: usize,
        cost: Duration,
        overrun: Duration,
        stall: Option<(usize, Duration)>,
    ) -> (f64, Duration) {
        let mut p = Pacer::new(rate);
        let mut now = Duration::ZERO;
        for i in 0..n {
            if let Some((at, d)) = stall {
                if i == at {
                    now += d;
                }
            }
            let wait = p.due(now, 1472);
            if !wait.is_zero() {
                now += wait + overrun;
            }
            now += cost;
        }
        (now.as_secs_f64(), p.forfeited)
    }

    #[test]
    fn the_pacer_holds_the_rate_through_overrunning_sleeps() {
        // 10 000 datagrams of 1 500 bytes on the wire at 100 Mbit/s: 1.2 s.
        let ideal = 10_000.0 * 1500.0 * 8.0 / 100e6;
        for overrun in [0, 50, 150, 1000] {
            let (secs, lost) = simulate(
                100_000_000,
                10_000,
                Duration::from_micros(3),
                Duration::from_micros(overrun),
                None,
            );
            assert!(
                (secs - ideal).abs() / ideal < 0.002,
                "overrun {overrun} us: {secs} s for {ideal} s"
            );
            assert_eq!(lost, Duration::ZERO);
        }
    }

    #[test]
    fn the_pacer_gives_up_only_what_is_beyond_its_burst() {
        let ideal = 10_000.0 * 1500.0 * 8.0 / 100e6;
        // Held up for 3 ms: made up at once (a burst of at most 5 ms).
        let (secs, lost) = simulate(
            100_000_000,
            10_000,
            Duration::from_micros(3),
            Duration::ZERO,
            Some((5000, Duration::from_millis(3))),
        );
        assert!((secs - ideal).abs() / ideal < 0.002, "{secs}");
        assert_eq!(lost, Duration::ZERO);
        // Held up for 50 ms: 45 ms are given up and counted.
        let (secs, lost) = simulate(
            100_000_000,
            10_000,
            Duration::from_micros(3),
            Duration::ZERO,
            Some((5000, Duration::from_millis(50))),
        );
        assert!((lost.as_secs_f64() - 0.045).abs() < 0.0002, "{lost:?}");
        assert!((secs - ideal - 0.045).abs() / ideal < 0.002, "{secs}");
    }
}
