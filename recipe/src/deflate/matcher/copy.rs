//! The lazy loop fed a base's parse ([`crate::reuse`]): GNU gzip's steps
//! with the match search replaced by the copier's queued matches.

use super::{Boundary, Matcher, MIN_MATCH, WSIZE};

impl Matcher<'_> {
    /// The lazy loop's steps (as [`Matcher::deflate_lazy`] makes them) with
    /// the copier's queued matches for the match search: from the current
    /// string (inserted already) until the queue is empty and no match
    /// waits (after its last match, or once it was dropped), or the input ends (the caller's loop then goes on from the state left in
    /// `match_available` and `match_length`). A string older than 32 KiB
    /// before the queue's end is not inserted: no search after the copy
    /// reaches it. False when `block_out` wants no more.
    pub(super) fn copy_steps(
        &mut self,
        block_out: &mut impl FnMut(&mut Vec<u8>, Option<Boundary>) -> bool,
        match_available: &mut bool,
        match_length: &mut usize,
    ) -> bool {
        let until = self.copier.as_ref().map_or(0, |c| c.until);
        let from = self.origin + self.strstart as u64;
        // Whether `ins_h` is behind (strings were skipped).
        let mut stale = false;
        let done = loop {
            let pos = self.origin + self.strstart as u64;
            self.prev_length = *match_length;
            let prev_match = self.match_start;
            *match_length = MIN_MATCH - 1;
            if self.prev_length < self.max_lazy {
                if let Some((len, dist)) = self.copier.as_mut().and_then(|c| c.take_at(pos)) {
                    if dist < self.strstart {
                        *match_length = len.min(self.lookahead);
                        self.match_start = self.strstart - dist;
                    }
                }
            }
            if self.prev_length >= MIN_MATCH && *match_length <= self.prev_length {
                let dist = self.strstart - 1 - prev_match;
                let flush = self.trees.tally_match(
                    dist,
                    self.prev_length - MIN_MATCH,
                    self.strstart,
                    self.block_start,
                );
                self.lookahead -= self.prev_length - 1;
                let inner = self.prev_length - 2;
                let last = self.origin + (self.strstart + inner) as u64;
                if last + (WSIZE as u64) < until {
                    // None of the match's strings is inserted.
                    self.strstart += inner;
                    stale = true;
                } else {
                    for _ in 0..inner {
                        self.strstart += 1;
                        self.copy_insert(until, &mut stale);
                    }
                }
                *match_available = false;
                *match_length = MIN_MATCH - 1;
                self.strstart += 1;
                if flush && !self.block_done(block_out, true) {
                    self.count_copied(from);
                    return false;
                }
            } else if *match_available {
                let c = self.window[self.strstart - 1];
                // Whether a resumed matcher would search the next string as
                // this one does is not known here (the real search's length
                // at the literal is not copied).
                if self.trees.tally_lit(c, self.strstart, self.block_start)
                    && !self.block_done(block_out, false)
                {
                    self.count_copied(from);
                    return false;
                }
                self.strstart += 1;
                self.lookahead -= 1;
            } else {
                *match_available = true;
                self.strstart += 1;
                self.lookahead -= 1;
            }
            // The queue is done (or dropped) and no match found here waits
            // to be emitted: the caller's loop goes on from the next string.
            if *match_length < MIN_MATCH && !self.copier.as_ref().is_some_and(|c| c.queued()) {
                break true;
            }
            // The next step's string.
            self.refill();
            if self.lookahead == 0 {
                break true;
            }
            self.copy_insert(until, &mut stale);
        };
        self.count_copied(from);
        if stale {
            // Every string from 32 KiB before the copy's end was inserted
            // (the copy ended short of `until` only if the input ended).
            self.ins_h = 0;
            for j in 0..MIN_MATCH - 1 {
                self.update_hash(self.window[self.strstart + j]);
            }
        }
        done
    }

    /// Counts the plain bytes passed since `from` as copied.
    fn count_copied(&mut self, from: u64) {
        let at = self.origin + self.strstart as u64;
        if let Some(c) = &mut self.copier {
            c.stats.copied += at.saturating_sub(from);
        }
    }

    /// Inserts the string at `strstart` during a copy unless it is older
    /// than 32 KiB before `until` (then `ins_h` goes stale, and is set
    /// afresh at the next string inserted).
    #[inline]
    fn copy_insert(&mut self, until: u64, stale: &mut bool) {
        let pos = self.origin + self.strstart as u64;
        if pos + (WSIZE as u64) < until {
            *stale = true;
            return;
        }
        if *stale {
            self.ins_h = 0;
            for j in 0..MIN_MATCH - 1 {
                self.update_hash(self.window[self.strstart + j]);
            }
            *stale = false;
        }
        self.insert_string(self.strstart);
    }
}
