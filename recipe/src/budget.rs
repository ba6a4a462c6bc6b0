//! A process-wide bound on the large buffers of analysis and rebuild: the
//! encoders' state (liblzma's: an xz encoder at preset 6 holds about 94 MiB
//! of match finder, plus one block's compressed bytes in multi-threaded mode; zstd's at
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
//! A holder can also reserve *ahead* ([`reserve_ahead`]): bytes for what it
//! will reserve later (the encoder a rebuild's recipe makes, reserved where
//! the encoder is made), taken now while it comes in as a new holder, so
//! that it waits in the queue for all it will hold instead of coming in
//! with part of it and then wanting more beside the others (which the rule
//! above lets pass the budget). Its later reservations are drawn from what
//! it reserved ahead first, without waiting, and give back to it.
//!
//! Permits are tied to their thread (neither `Send` nor `Sync`).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

/// Bytes of large buffers held at once by this process: one xz encoder at
/// preset 6 with a block's output, or one zstd encoder at level 19, beside
/// an object's buffers; or several smaller ones.
pub const BUDGET: u64 = 160 << 20;

/// The process's budget.
static PROCESS: Budget = Budget::new(BUDGET);

/// Reserves `bytes` of the process's budget (see the module's rules),
/// waiting until they fit.
pub fn reserve(bytes: u64) -> Permit<'static> {
    PROCESS.reserve(bytes)
}

/// Sets the process's budget to `bytes` (before the work starts): an agent
/// whose own memory, beside these buffers, is smaller than [`BUDGET`]
/// assumes (the inside's, whose import holds no scan or chunk index) can
/// give them more.
pub fn set_process_limit(bytes: u64) {
    PROCESS.set_limit(bytes);
}

/// Reserves `bytes` of the process's budget and `ahead` more for what this
/// thread will reserve while it holds the permit ([`Budget::reserve_ahead`]).
pub fn reserve_ahead(bytes: u64, ahead: u64) -> Permit<'static> {
    PROCESS.reserve_ahead(bytes, ahead)
}

/// A bound on bytes held at once by the threads that reserve from it.
#[derive(Debug)]
pub struct Budget {
    limit: AtomicU64,
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug)]
struct State {
    /// Bytes reserved in all.
    held: u64,
    /// Each holder, by the order it came in.
    holders: BTreeMap<u64, Holder>,
    /// Holders waiting to hold more.
    stalled: BTreeSet<u64>,
    /// New holders waiting to come in, by the order they came.
    queue: BTreeSet<u64>,
    next: u64,
}

/// What a holder has reserved.
#[derive(Debug)]
struct Holder {
    /// Bytes of the budget it holds (what it reserved ahead included).
    bytes: u64,
    /// Its live permits.
    permits: u32,
    /// What it reserved ahead and has not drawn.
    credit: u64,
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
    /// Of `bytes`, those drawn from what the holder reserved ahead: they go
    /// back to it, not to the budget.
    drawn: u64,
    /// What this permit reserved ahead for its holder (its credit ends with
    /// it).
    ahead: u64,
    _thread: PhantomData<*const ()>,
}

impl Budget {
    /// A budget of `limit` bytes.
    pub const fn new(limit: u64) -> Budget {
        Budget {
            limit: AtomicU64::new(limit),
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
        self.limit.load(Ordering::Relaxed)
    }

    /// Changes its size; those waiting see the new size at once.
    pub fn set_limit(&self, bytes: u64) {
        let g = self.lock();
        self.limit.store(bytes, Ordering::Relaxed);
        drop(g);
        self.changed.notify_all();
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
        self.reserve_ahead(bytes, 0)
    }

    /// Reserves `bytes` and `ahead` bytes more, waiting until both fit: the
    /// permits this thread takes later while it holds this one draw from
    /// the `ahead` bytes first (without waiting), and give back to them when
    /// they drop. Those permits must drop before this one.
    pub fn reserve_ahead(&self, bytes: u64, ahead: u64) -> Permit<'_> {
        let id = self.id();
        let mine = MINE.with(|m| m.borrow().iter().find(|(b, _)| *b == id).map(|(_, h)| *h));
        let mut g = self.lock();
        let mut drawn = 0;
        let holder = match mine {
            Some(holder) if g.holders.contains_key(&holder) => {
                let h = g.holders.get_mut(&holder).expect("held");
                drawn = bytes.min(h.credit);
                h.credit -= drawn;
                g = self.grow_locked(g, holder, bytes - drawn + ahead);
                let h = g.holders.get_mut(&holder).expect("held");
                h.permits += 1;
                h.credit += ahead;
                holder
            }
            _ => {
                let bytes = bytes + ahead;
                let holder = g.next;
                g.next += 1;
                g.queue.insert(holder);
                while g.queue.first() != Some(&holder)
                    || !g.stalled.is_empty()
                    || (g.held > 0 && g.held + bytes > self.limit())
                {
                    g = self.wait(g);
                }
                g.queue.remove(&holder);
                g.held += bytes;
                g.holders.insert(
                    holder,
                    Holder {
                        bytes,
                        permits: 1,
                        credit: ahead,
                    },
                );
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
            bytes: bytes + ahead,
            drawn,
            ahead,
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
        let fits = |s: &State| s.held + bytes <= self.limit();
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
        g.holders.get_mut(&holder).expect("held").bytes += bytes;
        g
    }

    /// Gives `bytes` back to the budget and `drawn` back to what `holder`
    /// reserved ahead; with `last`, a permit of it ends, taking `ahead` of
    /// its credit with it.
    fn release(&self, holder: u64, (bytes, drawn, ahead): (u64, u64, u64), last: bool) {
        let mut g = self.lock();
        g.held -= bytes;
        let entry = g.holders.get_mut(&holder).expect("held");
        entry.bytes -= bytes;
        entry.credit = (entry.credit + drawn).saturating_sub(ahead);
        if last {
            entry.permits -= 1;
            if entry.permits == 0 {
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

    /// Holds `extra` bytes more, waiting as a holder wanting more does
    /// for those it has not reserved ahead.
    pub fn grow(&mut self, extra: u64) {
        let mut g = self.budget.lock();
        let h = g.holders.get_mut(&self.holder).expect("held");
        let drawn = extra.min(h.credit);
        h.credit -= drawn;
        let g = self.budget.grow_locked(g, self.holder, extra - drawn);
        drop(g);
        self.bytes += extra;
        self.drawn += drawn;
    }

    /// Gives back all but `bytes` (nothing if it holds no more): first to
    /// the budget, then what it drew from its holder's credit. What it
    /// reserved ahead stays until it drops.
    pub fn shrink(&mut self, bytes: u64) {
        let bytes = bytes.max(self.ahead);
        if bytes < self.bytes {
            let give = self.bytes - bytes;
            let to_budget = give.min(self.bytes - self.drawn - self.ahead);
            let to_credit = give - to_budget;
            self.budget
                .release(self.holder, (to_budget, to_credit, 0), false);
            self.bytes = bytes;
            self.drawn -= to_credit;
        }
    }

    /// Moves up to `bytes` of what this permit holds (those it did not draw
    /// from what its holder reserved ahead) into a [`Share`] that another
    /// thread, working for this one, gives back as soon as it knows it needs
    /// less (a reservation made for a guess), instead of when this permit
    /// shrinks. The permit is borrowed while the share lives.
    pub fn share(&mut self, bytes: u64) -> Share<'_> {
        let bytes = bytes.min(self.bytes - self.drawn - self.ahead);
        self.bytes -= bytes;
        Share {
            budget: self.budget,
            holder: self.holder,
            bytes,
            _permit: PhantomData,
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

/// Bytes of a [`Permit`]'s holder moved out by [`Permit::share`], given back
/// to the budget when shrunk or dropped. `Send`: the thread it is lent to is
/// not a holder itself (a second holder would wait for the first, which
/// waits for it).
#[derive(Debug)]
pub struct Share<'p> {
    budget: &'p Budget,
    holder: u64,
    bytes: u64,
    _permit: PhantomData<&'p mut ()>,
}

impl Share<'_> {
    /// Bytes it holds.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Gives back all but `bytes` (nothing if it holds no more).
    pub fn shrink(&mut self, bytes: u64) {
        if bytes < self.bytes {
            self.budget
                .release(self.holder, (self.bytes - bytes, 0, 0), false);
            self.bytes = bytes;
        }
    }
}

impl Drop for Share<'_> {
    fn drop(&mut self) {
        self.shrink(0);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let (drawn, ahead) = (self.drawn, self.ahead);
        self.budget
            .release(self.holder, (self.bytes - drawn, drawn, ahead), true);
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
    fn what_is_reserved_ahead_is_drawn_without_waiting_and_given_back_to_it() {
        let b = leaked(100 * MIB);
        // Buffers of 30 and an encoder of 50 to come: in together.
        let object = b.reserve_ahead(30 * MIB, 50 * MIB);
        assert_eq!(b.held(), 80 * MIB);
        // Another thread takes the rest of the budget.
        let (tx, rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let other = std::thread::spawn(move || {
            let p = b.reserve(20 * MIB);
            tx.send(()).unwrap();
            go_rx.recv().unwrap();
            drop(p);
        });
        assert!(within(&rx, 10_000));
        assert_eq!(b.held(), 100 * MIB);
        // The encoder is drawn from what was reserved ahead: no wait, and
        // the budget holds no more.
        let encoder = b.reserve(50 * MIB);
        assert_eq!(b.held(), 100 * MIB);
        drop(encoder);
        assert_eq!(
            b.held(),
            100 * MIB,
            "given back to the credit, not the budget"
        );
        // Drawn again (a second stream), and part of it given back early.
        let mut encoder = b.reserve(40 * MIB);
        encoder.shrink(10 * MIB);
        assert_eq!(b.held(), 100 * MIB);
        drop(encoder);
        go_tx.send(()).unwrap();
        other.join().unwrap();
        assert_eq!(b.held(), 80 * MIB);
        drop(object);
        assert_eq!(b.held(), 0);
    }

    #[test]
    fn a_larger_limit_lets_a_waiter_in() {
        let b = leaked(100 * MIB);
        let first = b.reserve(80 * MIB);
        let (tx, rx) = mpsc::channel();
        let second = std::thread::spawn(move || {
            let p = b.reserve(40 * MIB);
            tx.send(()).unwrap();
            drop(p);
        });
        assert!(!within(&rx, 300));
        b.set_limit(120 * MIB);
        assert_eq!(b.limit(), 120 * MIB);
        assert!(within(&rx, 10_000), "120 fit in the larger budget");
        second.join().unwrap();
        drop(first);
        assert_eq!(b.held(), 0);
    }

    #[test]
    fn more_than_was_reserved_ahead_grows_by_the_rest_only() {
        let b = leaked(100 * MIB);
        let object = b.reserve_ahead(10 * MIB, 20 * MIB);
        let mut encoder = b.reserve(25 * MIB);
        assert_eq!(b.held(), 35 * MIB, "5 more than the 30 reserved");
        encoder.grow(10 * MIB);
        assert_eq!(b.held(), 45 * MIB);
        encoder.shrink(0);
        assert_eq!(b.held(), 30 * MIB);
        drop(encoder);
        drop(object);
        assert_eq!(b.held(), 0);
    }

    #[test]
    fn a_new_holder_reserving_ahead_waits_for_all_of_it() {
        let b = leaked(100 * MIB);
        let first = b.reserve(50 * MIB);
        let (tx, rx) = mpsc::channel();
        let second = std::thread::spawn(move || {
            // 10 of buffers fit beside the 50; with 50 ahead they do not.
            let p = b.reserve_ahead(10 * MIB, 50 * MIB);
            tx.send(()).unwrap();
            drop(b.reserve(50 * MIB));
            drop(p);
        });
        assert!(!within(&rx, 300), "it waits for its encoder's room too");
        drop(first);
        assert!(within(&rx, 10_000));
        second.join().unwrap();
        assert_eq!(b.held(), 0);
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
    fn a_share_given_back_on_another_thread_lets_a_waiter_in() {
        let b = leaked(100);
        let mut p = b.reserve(90);
        let (tx, rx) = mpsc::channel();
        std::thread::scope(|s| {
            let mut share = p.share(80);
            assert_eq!(share.bytes(), 80);
            let waiter = s.spawn(move || {
                let _q = b.reserve(50);
                tx.send(()).unwrap();
            });
            assert!(!within(&rx, 100), "50 do not fit beside 90");
            s.spawn(move || {
                share.shrink(30);
                assert_eq!(share.bytes(), 30);
                assert_eq!(b.held(), 40);
            })
            .join()
            .unwrap();
            assert!(within(&rx, 2000), "40 held: 50 fit");
            waiter.join().unwrap();
        });
        // The share dropped gave back its 30; the permit keeps its 10.
        assert_eq!(p.bytes(), 10);
        assert_eq!(b.held(), 10);
        drop(p);
        assert_eq!(b.held(), 0);
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
