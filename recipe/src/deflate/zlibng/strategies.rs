//! zlib-ng's block functions for the default strategy: `deflate_quick`
//! (level 1), `deflate_fast` (level 2), `deflate_medium` (levels 3 to 6)
//! and `deflate_slow` (levels 7 to 9). Each runs as one `deflate()` call
//! does: until the call's input is used up (`NeedMore`), or, finishing, to
//! the stream's end.

use super::lz::{load16, Lz, MAX_DIST, MIN_LOOKAHEAD, WANT_MIN_MATCH, WINDOW_SIZE};
use super::Version;

/// How a block function's call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Done {
    /// The call's input is used up (`need_more`).
    NeedMore,
    /// The stream is finished (`finish_done`).
    Finished,
    /// The sink said stop.
    Stopped,
    /// The caller's output buffer filled at a block's end (`need_more`
    /// with input left: the caller grows it and calls again).
    OutFull,
}

/// Whether a chain head is a usable match candidate at `strstart`.
#[inline]
fn in_reach(strstart: usize, head: usize) -> bool {
    head != 0 && head < strstart && strstart - head <= MAX_DIST
}

/// The end of a call (the strategies share it): keeps `insert`, and ends
/// the stream when finishing.
fn end_call(s: &mut Lz, finish: bool) -> Done {
    s.insert = s.strstart.min(2);
    if finish {
        s.flush_block(true);
        return Done::Finished;
    }
    // A call without a flush returns `NeedMore` before this point.
    Done::NeedMore
}

/// Level 1 (`deflate_quick`): the hash chain's head only, fixed codes, one
/// block per call (the finishing call starts the last one).
pub(super) fn quick(s: &mut Lz, finish: bool, open: &mut u8) -> Done {
    if finish && *open != 2 {
        if *open != 0 {
            s.trees.end_fixed(false);
            *open = 0;
            s.block_start = s.strstart as i64;
        }
        s.trees.start_fixed(true);
        *open = 2;
        s.block_start = s.strstart as i64;
    } else if *open == 0 && s.lookahead > 0 {
        s.trees.start_fixed(false);
        *open = 1;
        s.block_start = s.strstart as i64;
    }
    loop {
        if s.stopped {
            return Done::Stopped;
        }
        if s.lookahead < MIN_LOOKAHEAD {
            s.fill_window();
            if s.lookahead < MIN_LOOKAHEAD && !finish {
                return Done::NeedMore;
            }
            if s.lookahead == 0 {
                break;
            }
            if *open == 0 {
                s.trees.start_fixed(finish);
                *open = 1 + u8::from(finish);
                s.block_start = s.strstart as i64;
            }
        }
        if s.lookahead >= WANT_MIN_MATCH {
            let head = s.quick_insert(s.strstart);
            let dist = s.strstart as i64 - head as i64;
            if dist > 0
                && dist <= MAX_DIST as i64
                && load16(&s.window[..], s.strstart) == load16(&s.window[..], head)
            {
                let mut len = s.compare256(s.strstart + 2, head + 2) + 2;
                if len >= WANT_MIN_MATCH {
                    len = len.min(s.lookahead).min(258);
                    s.trees.fixed_match(dist as usize, len - 3);
                    s.lookahead -= len;
                    s.strstart += len;
                    continue;
                }
            }
        }
        let c = s.window[s.strstart];
        s.trees.fixed_lit(c);
        if s.trees.bits.out.len() >= 1 << 15 {
            s.emit();
        }
        s.strstart += 1;
        s.lookahead -= 1;
    }
    s.insert = s.strstart.min(2);
    if *open != 0 {
        s.trees.end_fixed(finish);
        *open = 0;
        s.block_start = s.strstart as i64;
    }
    s.emit();
    if finish {
        Done::Finished
    } else {
        Done::NeedMore
    }
}

/// Level 2 (`deflate_fast`): the longest match, no lazy evaluation; a
/// match longer than `max_insert_length` is not inserted.
pub(super) fn fast(s: &mut Lz, finish: bool) -> Done {
    loop {
        if s.stopped {
            return Done::Stopped;
        }
        if s.lookahead < MIN_LOOKAHEAD {
            s.fill_window();
            if s.lookahead < MIN_LOOKAHEAD && !finish {
                return Done::NeedMore;
            }
            if s.lookahead == 0 {
                break;
            }
        }
        let mut len = 0;
        if s.lookahead >= WANT_MIN_MATCH {
            let head = s.quick_insert(s.strstart);
            if in_reach(s.strstart, head) {
                len = s.longest_match(head);
            }
        }
        let full = if len >= WANT_MIN_MATCH {
            let full = s.tally_match(s.strstart - s.match_start, len);
            s.lookahead -= len;
            if len <= s.cfg.lazy && s.lookahead >= WANT_MIN_MATCH {
                s.insert_strings(s.strstart + 1, len - 1);
            } else {
                s.quick_insert(s.strstart + len - 1);
            }
            s.strstart += len;
            full
        } else {
            let full = s.tally_lit(s.window[s.strstart]);
            s.lookahead -= 1;
            s.strstart += 1;
            full
        };
        if full {
            s.flush_block(false);
        }
    }
    end_call(s, finish)
}

/// A match (or literal run) of `deflate_medium`; positions in the window.
#[derive(Clone, Copy, Debug, Default)]
struct Match {
    start: usize,
    len: usize,
    strstart: usize,
    orgstart: usize,
}

/// Tallies `m`: a match, or its bytes as literals when shorter than 4.
fn emit_match(s: &mut Lz, m: Match) -> bool {
    if m.len < WANT_MIN_MATCH {
        let mut full = false;
        for at in m.strstart..m.strstart + m.len {
            full |= s.trees.tally_lit(s.window[at], at, s.block_start);
            s.lookahead -= 1;
        }
        return full;
    }
    let full = s.tally_match(m.strstart - m.start, m.len);
    s.lookahead -= m.len;
    full
}

/// Inserts the strings of `m` after its first (2.2.5 on: only when
/// `len <= 16 * max_insert_length`, else its last string only).
fn insert_match(s: &mut Lz, mut m: Match) {
    if s.lookahead <= m.len + WANT_MIN_MATCH {
        return;
    }
    let insert_range = |s: &mut Lz, m: Match| {
        if m.strstart >= m.orgstart {
            if m.strstart + m.len > m.orgstart {
                s.insert_strings(m.strstart, m.len);
            } else {
                s.insert_strings(m.strstart, m.orgstart - m.strstart + 1);
            }
        } else if m.orgstart < m.strstart + m.len {
            s.insert_strings(m.orgstart, m.strstart + m.len - m.orgstart);
        }
    };
    if m.len < WANT_MIN_MATCH {
        m.strstart += 1;
        m.len -= 1;
        if m.len > 0 && m.strstart >= m.orgstart {
            if m.strstart + m.len > m.orgstart {
                s.insert_strings(m.strstart, m.len);
            } else {
                s.insert_strings(m.strstart, m.orgstart - m.strstart + 1);
            }
        }
        return;
    }
    if s.version == Version::V2_2_2 || (m.len <= 16 * s.cfg.lazy && s.lookahead >= WANT_MIN_MATCH) {
        m.strstart += 1;
        m.len -= 1;
        insert_range(s, m);
    } else {
        let last = m.strstart + m.len;
        if last >= 1 {
            s.quick_insert(last - 1);
        }
    }
}

/// Moves `next` left over the end of `current` where the bytes allow
/// (`fizzle_matches`).
fn fizzle(s: &Lz, current: &mut Match, next: &mut Match) {
    if current.len <= 1 || current.len > 1 + next.start || current.len > 1 + next.strstart {
        return;
    }
    let w = &s.window;
    if w[next.start + 1 - current.len] != w[next.strstart + 1 - current.len] {
        return;
    }
    let (mut c, mut n) = (*current, *next);
    let limit = next.strstart.saturating_sub(MAX_DIST);
    let mut changed = false;
    while w[n.start - 1] == w[n.strstart - 1] {
        if c.len < 1 || n.strstart <= limit || n.len >= 256 || n.start <= 1 {
            break;
        }
        n.strstart -= 1;
        n.start -= 1;
        n.len += 1;
        c.len -= 1;
        changed = true;
    }
    if changed && c.len <= 1 && n.len != 2 {
        n.orgstart += 1;
        *current = c;
        *next = n;
    }
}

/// The match at `s.strstart` as `deflate_medium` finds it (a literal when
/// shorter than 4, or when there is no candidate).
fn find(s: &mut Lz, head: usize) -> Match {
    let mut m = Match {
        strstart: s.strstart,
        orgstart: s.strstart,
        ..Match::default()
    };
    if in_reach(s.strstart, head) {
        m.len = s.longest_match(head);
        m.start = s.match_start;
        if m.len < WANT_MIN_MATCH || m.start >= m.strstart {
            m.len = 1;
        }
    } else {
        m.len = 1;
    }
    m
}

/// Levels 3 to 6 (`deflate_medium`): from level 5 up, the match at the
/// end of the current one is found first and may take over its tail.
pub(super) fn medium(s: &mut Lz, finish: bool) -> Done {
    let early_exit = s.level < 5;
    // zlib-ng clears it at each call (a call ends where it is cleared).
    let mut next_m: Option<Match> = None;
    let done = loop {
        if s.stopped {
            break Done::Stopped;
        }
        if s.lookahead < MIN_LOOKAHEAD {
            s.fill_window();
            if s.lookahead < MIN_LOOKAHEAD && !finish {
                break Done::NeedMore;
            }
            if s.lookahead == 0 {
                break Done::Finished;
            }
            next_m = None;
        }
        let mut current = match next_m.take() {
            Some(m) if !early_exit && m.len > 0 => m,
            _ => {
                let head = if s.lookahead >= WANT_MIN_MATCH {
                    s.quick_insert(s.strstart)
                } else {
                    0
                };
                find(s, head)
            }
        };
        insert_match(s, current);
        if !early_exit
            && s.lookahead > MIN_LOOKAHEAD
            && current.strstart + current.len < WINDOW_SIZE - MIN_LOOKAHEAD
        {
            s.strstart = current.strstart + current.len;
            let head = s.quick_insert(s.strstart);
            let mut n = find(s, head);
            if n.len >= WANT_MIN_MATCH {
                fizzle(s, &mut current, &mut n);
            }
            next_m = Some(n);
            s.strstart = current.strstart;
        } else {
            next_m = None;
        }
        let full = emit_match(s, current);
        s.strstart += current.len;
        if full {
            s.flush_block(false);
            if s.out_full() {
                break Done::OutFull;
            }
        }
    };
    match done {
        Done::Finished => end_call(s, finish),
        other => other,
    }
}

/// Levels 7 to 9 (`deflate_slow`): lazy evaluation, with `longest_match`,
/// or at level 9 (chains over 1,024) `longest_match_slow`.
pub(super) fn slow(s: &mut Lz, finish: bool, match_available: &mut bool) -> Done {
    loop {
        if s.stopped {
            return Done::Stopped;
        }
        if s.lookahead < MIN_LOOKAHEAD {
            s.fill_window();
            if s.lookahead < MIN_LOOKAHEAD && !finish {
                return Done::NeedMore;
            }
            if s.lookahead == 0 {
                break;
            }
        }
        let head = if s.lookahead >= WANT_MIN_MATCH {
            s.quick_insert(s.strstart)
        } else {
            0
        };
        let prev_match = s.match_start;
        let mut len = 2;
        if in_reach(s.strstart, head) && s.prev_length < s.cfg.lazy {
            len = if s.roll {
                s.longest_match_slow(head)
            } else {
                s.longest_match(head)
            };
        }
        if s.prev_length >= 3 && len <= s.prev_length {
            let max_insert = s.strstart + s.lookahead - 3;
            let full = s.trees.tally_match(
                s.strstart - 1 - prev_match,
                s.prev_length - 3,
                s.strstart,
                s.block_start,
            );
            s.prev_length -= 1;
            s.lookahead -= s.prev_length;
            let mov_fwd = s.prev_length - 1;
            if max_insert > s.strstart {
                let count = mov_fwd.min(max_insert - s.strstart);
                s.insert_strings(s.strstart + 1, count);
            }
            s.prev_length = 0;
            *match_available = false;
            s.strstart += mov_fwd + 1;
            if full {
                s.flush_block(false);
            }
        } else if *match_available {
            let full = s.tally_lit(s.window[s.strstart - 1]);
            if full {
                s.flush_block(false);
            }
            s.prev_length = len;
            s.strstart += 1;
            s.lookahead -= 1;
        } else {
            s.prev_length = len;
            *match_available = true;
            s.strstart += 1;
            s.lookahead -= 1;
        }
    }
    if *match_available {
        s.tally_lit(s.window[s.strstart - 1]);
        *match_available = false;
    }
    end_call(s, finish)
}
