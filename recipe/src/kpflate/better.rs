//! klauspost's matchers of levels 4 to 6 (`level4.go` to `level6.go`): a
//! short table of 4-byte hashes and a long one of 7-byte hashes (levels 5
//! and 6 keep two entries per long hash), a look one position ahead, and at
//! levels 5 and 6 a second try at the end of a short match. Level 5 is what
//! `flate.DefaultCompression` (and so pgzip's default) means.

use super::fast::{
    emit_match, hash4, hash7, load32, load64, match_long, match_short, remainder, Tables,
    INPUT_MARGIN, MAX_OFFSET,
};
use super::tokens::Tokens;

const BITS: u32 = 15;

/// Sets a two-entry long slot: `v` newest, the old newest previous.
#[inline]
fn push(tb: &mut Tables, h: usize, v: i32) {
    tb.prev[h] = tb.long[h];
    tb.long[h] = v;
}

/// Level 4. With `v118`, as klauspost 1.18.0 to 1.19.1 write it: their
/// `level4.go` (#1043) compares the match at `next_s` with the bytes at
/// its *distance* (`src[nextS-lOff+4:]` where `lOff` became a position)
/// rather than at its candidate, which changes which of the two matches is
/// taken.
pub(super) fn level4(
    src: &[u8],
    cur: i32,
    tb: &mut Tables,
    mut s: i32,
    dst: &mut Tokens,
    v118: bool,
) {
    let mut next_emit = s;
    let s_limit = src.len() as i32 - INPUT_MARGIN;
    let mut cv = load64(src, s);
    'blocks: loop {
        let mut next_s = s;
        let mut t;
        loop {
            let hs = hash4(cv, BITS);
            let hl = hash7(cv, BITS);
            s = next_s;
            next_s = s + 1 + ((s - next_emit) >> 6);
            if next_s > s_limit {
                break 'blocks;
            }
            let s_cand = tb.table[hs];
            let l_cand = tb.long[hl];
            let next = load64(src, next_s);
            tb.table[hs] = s + cur;
            tb.long[hl] = s + cur;
            t = l_cand - cur;
            if s - t < MAX_OFFSET && cv as u32 == load32(src, t) {
                break;
            }
            t = s_cand - cur;
            if s - t < MAX_OFFSET && cv as u32 == load32(src, t) {
                let l_cand = tb.long[hash7(next, BITS)];
                let l_off = next_s - (l_cand - cur);
                if l_off < MAX_OFFSET && load32(src, l_cand - cur) == next as u32 {
                    let l1 = match_long(s + 4, t + 4, src);
                    let other = if v118 { l_off } else { next_s - l_off };
                    let l2 = match_long(next_s + 4, other + 4, src);
                    if l2 > l1 {
                        s = next_s;
                        t = l_cand - cur;
                    }
                }
                break;
            }
            cv = next;
        }
        let l = match_long(s + 4, t + 4, src) + 4;
        let (s2, _, l) = emit_match(dst, src, next_emit, s, t, l);
        s = s2 + l;
        next_emit = s;
        if next_s >= s {
            s = next_s + 1;
        }
        if s >= s_limit {
            if ((s + 8) as usize) < src.len() {
                let cv = load64(src, s);
                tb.table[hash4(cv, BITS)] = s + cur;
                tb.long[hash7(cv, BITS)] = s + cur;
            }
            break 'blocks;
        }
        let mut i = next_s;
        while i < s - 1 {
            let cv = load64(src, i);
            tb.long[hash7(cv, BITS)] = i + cur;
            tb.long[hash7(cv >> 8, BITS)] = i + cur + 1;
            tb.table[hash4(cv >> 8, BITS)] = i + cur + 1;
            i += 3;
        }
        let x = load64(src, s - 1);
        let o = cur + s - 1;
        tb.table[hash4(x, BITS)] = o;
        tb.long[hash7(x, BITS)] = o;
        cv = x >> 8;
    }
    remainder(dst, src, next_emit);
}

/// The search of levels 5 and 6 up to the first match from `at` = (s,
/// next_emit, s_limit): returns `next_s`, the match start, its source and
/// its length if already measured (else 0). `repeat` is level 6's last
/// distance (`None` at level 5).
fn find(
    src: &[u8],
    cur: i32,
    tb: &mut Tables,
    at: (i32, i32, i32),
    mut cv: u64,
    repeat: Option<i32>,
) -> Option<(i32, i32, i32, i32)> {
    let (mut s, next_emit, s_limit) = at;
    let skip_log = if repeat.is_some() { 7 } else { 6 };
    let mut next_s = s;
    let mut l = 0;
    let mut t;
    loop {
        let mut hs = hash4(cv, BITS);
        let mut hl = hash7(cv, BITS);
        s = next_s;
        next_s = s + 1 + ((s - next_emit) >> skip_log);
        if next_s > s_limit {
            return None;
        }
        let s_cand = tb.table[hs];
        let (lc_cur, lc_prev) = (tb.long[hl], tb.prev[hl]);
        let next = load64(src, next_s);
        tb.table[hs] = s + cur;
        push(tb, hl, s + cur);
        hs = hash4(next, BITS);
        hl = hash7(next, BITS);
        t = lc_cur - cur;
        if s - t < MAX_OFFSET {
            if cv as u32 == load32(src, t) {
                tb.table[hs] = next_s + cur;
                push(tb, hl, next_s + cur);
                let t2 = lc_prev - cur;
                if s - t2 < MAX_OFFSET && cv as u32 == load32(src, t2) {
                    l = match_short(s + 4, t + 4, src) + 4;
                    let ml1 = match_short(s + 4, t2 + 4, src) + 4;
                    if ml1 > l {
                        t = t2;
                        l = ml1;
                    }
                }
                break;
            }
            t = lc_prev - cur;
            if s - t < MAX_OFFSET && cv as u32 == load32(src, t) {
                tb.table[hs] = next_s + cur;
                push(tb, hl, next_s + cur);
                break;
            }
        }
        t = s_cand - cur;
        if s - t < MAX_OFFSET && cv as u32 == load32(src, t) {
            l = match_short(s + 4, t + 4, src) + 4;
            let (lc_cur, lc_prev) = (tb.long[hl], tb.prev[hl]);
            tb.table[hs] = next_s + cur;
            push(tb, hl, next_s + cur);
            if let Some(repeat) = repeat {
                let t2 = s - repeat + 1;
                if load32(src, t2) == (cv >> 8) as u32 {
                    let ml = match_short(s + 5, t2 + 4, src) + 4;
                    if ml > l {
                        return Some((next_s, s + 1, t2, ml));
                    }
                }
            }
            let t2 = lc_cur - cur;
            if next_s - t2 < MAX_OFFSET {
                if load32(src, t2) == next as u32 {
                    let ml = match_short(next_s + 4, t2 + 4, src) + 4;
                    if ml > l {
                        t = t2;
                        s = next_s;
                        l = ml;
                        if repeat.is_none() {
                            break;
                        }
                    }
                }
                let t2 = lc_prev - cur;
                if next_s - t2 < MAX_OFFSET && load32(src, t2) == next as u32 {
                    // At level 6 `s` may already be `next_s` here (Go
                    // measures from `next_s` either way).
                    let ml = match_short(next_s + 4, t2 + 4, src) + 4;
                    if ml > l {
                        t = t2;
                        s = next_s;
                        l = ml;
                    }
                }
            }
            break;
        }
        cv = next;
    }
    Some((next_s, s, t, l))
}

/// Levels 5 and 6 (`repeat`: level 6).
fn level56(src: &[u8], cur: i32, tb: &mut Tables, mut s: i32, dst: &mut Tokens, six: bool) {
    let mut next_emit = s;
    let s_limit = src.len() as i32 - INPUT_MARGIN;
    let mut cv = load64(src, s);
    let mut repeat = 1i32;
    while let Some((next_s, s1, mut t, mut l)) = find(
        src,
        cur,
        tb,
        (s, next_emit, s_limit),
        cv,
        six.then_some(repeat),
    ) {
        s = s1;
        if l == 0 {
            l = match_long(s + 4, t + 4, src) + 4;
        } else if l == 258 {
            l += match_long(s + l, t + l, src);
        }
        let s_at = s + l;
        if (six || l < 30) && s_at < s_limit {
            // Another match ending where this one ends, two bytes in.
            let h = hash7(load64(src, s_at), BITS);
            let s2 = s + 2;
            let try_at = |e: i32, t: &mut i32, l: &mut i32, s: &mut i32| {
                let t2 = e - cur - *l + 2;
                let off = s2 - t2;
                if t2 >= 0 && off < MAX_OFFSET && off > 0 {
                    let l2 = match_long(s2, t2, src);
                    if l2 > *l {
                        *t = t2;
                        *l = l2;
                        *s = s2;
                    }
                }
            };
            let (e_cur, e_prev) = (tb.long[h], tb.prev[h]);
            if !six {
                try_at(e_cur, &mut t, &mut l, &mut s);
            } else if s2 - (e_cur - cur - l + 2) < MAX_OFFSET {
                try_at(e_cur, &mut t, &mut l, &mut s);
                try_at(e_prev, &mut t, &mut l, &mut s);
            }
        }
        let (s2, t2, l) = emit_match(dst, src, next_emit, s, t, l);
        repeat = s2 - t2;
        s = s2 + l;
        next_emit = s;
        if next_s >= s {
            s = next_s + 1;
        }
        if s >= s_limit {
            if six {
                let mut i = next_s + 1;
                while i < src.len() as i32 - 8 {
                    let cv = load64(src, i);
                    tb.table[hash4(cv, BITS)] = i + cur;
                    push(tb, hash7(cv, BITS), i + cur);
                    i += 2;
                }
            }
            break;
        }
        if six {
            let mut i = next_s + 1;
            while i < s - 1 {
                let cv = load64(src, i);
                tb.table[hash4(cv, BITS)] = i + cur;
                push(tb, hash7(cv, BITS), i + cur);
                push(tb, hash7(cv >> 8, BITS), i + cur + 1);
                i += 2;
            }
            cv = load64(src, s);
            continue;
        }
        let mut i = s - l + 1;
        if i < s - 1 {
            let cv = load64(src, i);
            tb.table[hash4(cv, BITS)] = i + cur;
            push(tb, hash7(cv, BITS), i + cur);
            push(tb, hash7(cv >> 8, BITS), i + cur + 1);
            tb.table[hash4(cv >> 16, BITS)] = i + cur + 2;
            i += 4;
            while i < s - 1 {
                let cv = load64(src, i);
                push(tb, hash7(cv, BITS), i + cur);
                tb.table[hash4(cv >> 8, BITS)] = i + cur + 1;
                i += 3;
            }
        }
        let x = load64(src, s - 1);
        let o = cur + s - 1;
        tb.table[hash4(x, BITS)] = o;
        push(tb, hash7(x, BITS), o);
        cv = x >> 8;
    }
    remainder(dst, src, next_emit);
}

pub(super) fn level5(src: &[u8], cur: i32, tb: &mut Tables, s: i32, dst: &mut Tokens) {
    level56(src, cur, tb, s, dst, false);
}

pub(super) fn level6(src: &[u8], cur: i32, tb: &mut Tables, s: i32, dst: &mut Tokens) {
    level56(src, cur, tb, s, dst, true);
}
