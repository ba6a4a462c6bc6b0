//! A process-wide bound on the large buffers of analysis and rebuild: the
//! encoders' state (liblzma's: an xz encoder at preset 6 holds about 94 MiB
//! of match finder, plus a block of input in multi-threaded mode; zstd's at
//! its slow levels) and, for a caller that asks, the buffers an object's
//! analysis holds (the object, its expanded form, its base's reference form).
//! Objects are analysed and rebuilt on every core; without a bound, two or
//! three large objects at once took an agent past its 256 MiB.
//!
//! A caller reserves what it will hold before it allocates it and gives it
//! back when the [`Permit`] drops (or [`Permit::shrink`]s it).
//!
//! Every reservation of a thread belongs to that thread's *holder*: the first
//! permit a thread takes makes it one, in order of arrival, and later
//! permits the same thread takes while it still holds one (an encoder made
//! while the object's buffers are held) add to it. A thread therefore never
//! waits for memory it holds itself.
//!
//! - A new holder waits while others hold the budget and it does not fit
//!   beside them, or while an older new holder or a holder wanting more is
//!   waiting (first come, first served: a large request is not starved by a
//!   stream of small ones). One larger than the whole budget runs alone.
//! - A holder that wants more waits while it does not fit, unless it is the
//!   oldest holder and every other holder is waiting for more too: then it
//!   goes on over the budget. Without that rule two holders each wanting
//!   more than the other leaves would wait for each other for ever; with it
//!   the budget can be passed, by at most what the others held when they
//!   stopped, and only when every holder wants more at once.
//!
//! Permits are tied to their thread (neither `Send` nor `Sync`).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;
use std::sync::{Condvar, Mutex, MutexGuard};

/// Bytes of large buffers held at once by this process: one xz encoder at
/// preset 6 with a block of input, or one zstd encoder at level 19, beside
/// an object's buffers; or several smaller ones.
pub const BUDGET: u64 = 160 << 20;

/// The process's budget.
static PROCESS: Budget = Budget::new(BUDGET);

/// Reserves `bytes` of the process's budget (see the module's rules),
/// waiting until they fit.
pub fn reserve(bytes: u64) -> Permit<'static> {
    PROCESS.reserve(bytes)
}

/// A bound on bytes held at once by the threads that reserve from it.
#[derive(Debug)]
pub struct Budget {
    limit: u64,
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug)]
struct State {
    /// Bytes reserved in all.
    held: u64,
    /// Each holder's bytes and live permits, by the order it came in.
    holders: BTreeMap<u64, (u64, u32)>,
    /// Holders waiting to hold more.
    stalled: BTreeSet<u64>,
    /// New holders waiting to come in, by the order they came.
    queue: BTreeSet<u64>,
    next: u64,
}

thread_local! {
    /// The holder this thread is in each budget (by address) it holds a
    /// permit of.
    static MINE: RefCell<Vec<(usize, u64)>> = const { RefCell::new(Vec::new()) };
}

/// Bytes reserved until dropped (or shrunk). Not `Send`: a holder is a thread.
#[derive(Debug)]
pub struct Permit<'a> {
    budget: &'a Budget,
    holder: u64,
    bytes: u64,
    _thread: PhantomData<*const ()>,
}

impl Budget {
    /// A budget of `limit` bytes.
    pub const fn new(limit: u64) -> Budget {
        Budget {
            limit,
            state: Mutex::new(State {
                held: 0,
                holders: BTreeMap::new(),
                stalled: BTreeSet::new(),
                queue: BTreeSet::new(),
                next: 0,
            }),
            changed: Condvar::new(),
        }
    }

    /// Its size.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes reserved now, by every thread.
    pub fn held(&self) -> u64 {
        self.lock().held
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked while holding
        // it; every update of the state is whole before it can panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'g>(&self, g: MutexGuard<'g, State>) -> MutexGuard<'g, State> {
        self.changed.wait(g).unwrap_or_else(|e| e.into_inner())
    }

    fn id(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    /// Reserves `bytes`, waiting until they fit (see the module's rules).
    pub fn reserve(&self, bytes: u64) -> Permit<'_> {
        let id = self.id();
        let mine = MINE.with(|m| m.borrow().iter().find(|(b, _)| *b == id).map(|(_, h)| *h));
        let mut g = self.lock();
        let holder = match mine {
            Some(holder) if g.holders.contains_key(&holder) => {
                g = self.grow_locked(g, holder, bytes);
                g.holders.get_mut(&holder).expect("held").1 += 1;
                holder
            }
            _ => {
                let holder = g.next;
                g.next += 1;
                g.queue.insert(holder);
                while g.queue.first() != Some(&holder)
                    || !g.stalled.is_empty()
                    || (g.held > 0 && g.held + bytes > self.limit)
                {
                    g = self.wait(g);
                }
                g.queue.remove(&holder);
                g.held += bytes;
                g.holders.insert(holder, (bytes, 1));
                MINE.with(|m| {
                    let mut m = m.borrow_mut();
                    m.retain(|(b, _)| *b != id);
                    m.push((id, holder));
                });
                // The next in the queue may fit too.
                self.changed.notify_all();
                holder
            }
        };
        drop(g);
        Permit {
            budget: self,
            holder,
            bytes,
            _thread: PhantomData,
        }
    }

    /// Adds `bytes` to `holder`'s share once they fit, or at once when it is
    /// the oldest holder and every other one is waiting for more.
    fn grow_locked<'g>(
        &self,
        mut g: MutexGuard<'g, State>,
        holder: u64,
        bytes: u64,
    ) -> MutexGuard<'g, State> {
        let fits = |s: &State| s.held + bytes <= self.limit;
        let unblocks = |s: &State| {
            s.holders.keys().next() == Some(&holder)
                && s.holders
                    .keys()
                    .all(|h| *h == holder || s.stalled.contains(h))
        };
        if !fits(&g) && !unblocks(&g) {
            g.stalled.insert(holder);
            // The oldest holder may now be the only one not waiting.
            self.changed.notify_all();
            while !fits(&g) && !unblocks(&g) {
                g = self.wait(g);
            }
            g.stalled.remove(&holder);
        }
        g.held += bytes;
        g.holders.get_mut(&holder).expect("held").0 += bytes;
        g
    }

    fn release(&self, holder: u64, bytes: u64, last: bool) {
        let mut g = self.lock();
        g.held -= bytes;
        let entry = g.holders.get_mut(&holder).expect("held");
        entry.0 -= bytes;
        if last {
            entry.1 -= 1;
            if entry.1 == 0 {
                g.holders.remove(&holder);
                let id = self.id();
                MINE.with(|m| m.borrow_mut().retain(|e| *e != (id, holder)));
            }
        }
        drop(g);
        self.changed.notify_all();
    }
}

impl Permit<'_> {
    /// Bytes this permit holds.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Holds `extra` bytes more, waiting as a holder wanting more does.
    pub fn grow(&mut self, extra: u64) {
        let g = self.budget.lock();
        let g = self.budget.grow_locked(g, self.holder, extra);
        drop(g);
        self.bytes += extra;
    }

    /// Gives back all but `bytes` (nothing if it holds no more).
    pub fn shrink(&mut self, bytes: u64) {
        if bytes < self.bytes {
            self.budget.release(self.holder, self.bytes - bytes, false);
            self.bytes = bytes;
        }
    }

    /// Holds exactly `bytes`: gives back the rest, or grows (waiting) to them.
    pub fn resize(&mut self, bytes: u64) {
        if bytes > self.bytes {
            self.grow(bytes - self.bytes);
        } else {
            self.shrink(bytes);
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.budget.release(self.holder, self.bytes, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    const MIB: u64 = 1 << 20;

    fn leaked(limit: u64) -> &'static Budget {
        Box::leak(Box::new(Budget::new(limit)))
    }

    /// Whether `rx` gets a message within `ms`.
    fn within(rx: &mpsc::Receiver<()>, ms: u64) -> bool {
        rx.recv_timeout(Duration::from_millis(ms)).is_ok()
    }

    #[test]
    fn a_request_over_what_is_left_waits_for_a_release() {
        let b = leaked(100 * MIB);
        let first = b.reserve(50 * MIB);
        let (tx, rx) = mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let second = b.reserve(30 * MIB);
            tx.send(()).unwrap();
            let third_fits = std::thread::spawn(move || drop(b.reserve(20 * MIB)));
            third_fits.join().unwrap();
            drop(second);
        });
        // 50 + 30 fit: the second comes in at once.
        assert!(within(&rx, 5000));
        waiter.join().unwrap();
        let (tx, rx) = mpsc::channel();
        let big = std::thread::spawn(move || {
            let p = b.reserve(60 * MIB);
            tx.send(()).unwrap();
            drop(p);
        });
        // 50 + 60 do not fit: it waits until the first is given back.
        assert!(!within(&rx, 300));
        drop(first);
        assert!(within(&rx, 10_000), "a release lets the waiter in");
        big.join().unwrap();
        assert_eq!(b.held(), 0);
    }

    #[test]
    fn one_request_over_the_whole_budget_runs_alone_and_never_deadlocks() {
        let b = leaked(100 * MIB);
        // Alone: in at once, though larger than the budget.
        let huge = b.reserve(500 * MIB);
        assert_eq!(b.held(), 500 * MIB);
        let (tx, rx) = mpsc::channel();
        let small = std::thread::spawn(move || {
            drop(b.reserve(MIB));
            tx.send(()).unwrap();
        });
        assert!(!within(&rx, 300), "nothing else runs beside it");
        drop(huge);
        assert!(within(&rx, 10_000));
        small.join().unwrap();
        // Behind a small holder it waits, then runs alone.
        let little = b.reserve(10 * MIB);
        let (tx, rx) = mpsc::channel();
        let second = std::thread::spawn(move || {
            drop(b.reserve(500 * MIB));
            tx.send(()).unwrap();
        });
        assert!(!within(&rx, 300));
        drop(little);
        assert!(within(&rx, 10_000));
        second.join().unwrap();
        assert_eq!(b.held(), 0);
    }

    #[test]
    fn a_thread_adds_to_what_it_holds_without_waiting_for_itself() {
        let b = leaked(100 * MIB);
        let buffers = b.reserve(80 * MIB);
        // An encoder made while the buffers are held: over the budget, but
        // this thread is the only holder, so it does not wait for itself.
        let encoder = b.reserve(90 * MIB);
        assert_eq!(b.held(), 170 * MIB);
        drop(encoder);
        assert_eq!(b.held(), 80 * MIB);
        drop(buffers);
        assert_eq!(b.held(), 0);
        // A new reservation after every permit is dropped is a new holder.
        let again = b.reserve(MIB);
        assert_eq!(b.held(), MIB);
        drop(again);
    }

    #[test]
    fn two_holders_wanting_more_than_is_left_do_not_deadlock() {
        let b = leaked(100 * MIB);
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let (in_tx, in_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        // The older holder takes 40, lets the younger take 40, then wants 50.
        let done_tx2 = done_tx.clone();
        let older = std::thread::spawn(move || {
            let mut p = b.reserve(40 * MIB);
            in_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            p.grow(50 * MIB);
            done_tx2.send("older").unwrap();
            drop(p);
        });
        assert!(within(&in_rx, 10_000));
        let younger = std::thread::spawn(move || {
            let mut p = b.reserve(40 * MIB);
            // Wants 50 too: 130 do not fit, and the older one waits as well.
            let encoder = b.reserve(50 * MIB);
            p.shrink(0);
            done_tx.send("younger").unwrap();
            drop(encoder);
            drop(p);
        });
        go_tx.send(()).unwrap();
        let first = done_rx.recv_timeout(Duration::from_secs(20));
        let second = done_rx.recv_timeout(Duration::from_secs(20));
        older.join().unwrap();
        younger.join().unwrap();
        let mut got = [first.expect("no deadlock"), second.expect("no deadlock")];
        got.sort_unstable();
        assert_eq!(got, ["older", "younger"]);
        assert_eq!(b.held(), 0);
    }

    #[test]
    fn the_younger_holder_waits_while_the_older_one_runs() {
        let b = leaked(100 * MIB);
        let older = b.reserve(60 * MIB);
        let (tx, rx) = mpsc::channel();
        let younger = std::thread::spawn(move || {
            let mut p = b.reserve(30 * MIB);
            tx.send(()).unwrap();
            // 60 + 30 + 20 do not fit, and the older holder is running: wait.
            p.grow(20 * MIB);
            tx.send(()).unwrap();
        });
        assert!(within(&rx, 10_000));
        assert!(!within(&rx, 300), "the younger waits for the older");
        drop(older);
        assert!(within(&rx, 10_000));
        younger.join().unwrap();
        assert_eq!(b.held(), 0);
    }

    #[test]
    fn first_come_first_served() {
        let b = leaked(100 * MIB);
        let first = b.reserve(60 * MIB);
        let (tx, rx) = mpsc::channel();
        let tx2 = tx.clone();
        let large = std::thread::spawn(move || {
            // 95 + 10 > 100: the small one goes in only after this drops,
            // so the order of the two messages is the order of admission.
            let p = b.reserve(95 * MIB);
            tx.send("large").unwrap();
            drop(p);
        });
        // Let the large one queue first.
        std::thread::sleep(Duration::from_millis(200));
        let small = std::thread::spawn(move || {
            let p = b.reserve(10 * MIB);
            tx2.send("small").unwrap();
            drop(p);
        });
        // The small one would fit beside the first, but the large one came
        // before it: neither goes in yet.
        assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
        drop(first);
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok("large"));
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok("small"));
        large.join().unwrap();
        small.join().unwrap();
    }

    #[test]
    fn a_failed_step_gives_its_share_back() {
        let b = leaked(100 * MIB);
        let failing = || -> Result<(), &'static str> {
            let mut p = b.reserve(40 * MIB);
            p.grow(30 * MIB);
            let _encoder = b.reserve(20 * MIB);
            Err("the stream does not decode")
        };
        assert!(failing().is_err());
        assert_eq!(b.held(), 0, "the permits dropped with the error");
        let panicked = std::thread::spawn(move || {
            let _p = b.reserve(70 * MIB);
            panic!("a defect while holding a share");
        })
        .join();
        assert!(panicked.is_err());
        assert_eq!(b.held(), 0, "a panic unwinds the permit too");
        drop(b.reserve(100 * MIB));
    }

    #[test]
    fn resize_and_shrink_give_back_and_take_more() {
        let b = leaked(100 * MIB);
        let mut p = b.reserve(10 * MIB);
        p.resize(50 * MIB);
        assert_eq!((p.bytes(), b.held()), (50 * MIB, 50 * MIB));
        p.resize(5 * MIB);
        assert_eq!((p.bytes(), b.held()), (5 * MIB, 5 * MIB));
        p.shrink(20 * MIB);
        assert_eq!(p.bytes(), 5 * MIB, "shrink never grows");
        drop(p);
        assert_eq!(b.held(), 0);
    }
}
