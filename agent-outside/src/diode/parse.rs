//! The sender's settings as written on the command line.

use anyhow::{bail, Result};

/// Parses a line rate such as `500M` (bits per second; k, M, G are powers of 1000).
pub fn parse_rate(s: &str) -> Result<u64> {
    let t = s.trim().trim_end_matches("bps").trim_end_matches("bit/s");
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1e3),
        Some('m' | 'M') => (&t[..t.len() - 1], 1e6),
        Some('g' | 'G') => (&t[..t.len() - 1], 1e9),
        _ => (t, 1.0),
    };
    match num.parse::<f64>() {
        Ok(n) if n > 0.0 && n.is_finite() => Ok((n * mult) as u64),
        _ => bail!("cannot read rate {s:?}: expected bits per second such as 500M or 10G"),
    }
}

/// Parses an overhead such as `10%` or `0.1`.
pub fn parse_overhead(s: &str) -> Result<f64> {
    let t = s.trim();
    let v = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
        None => t.parse::<f64>(),
    };
    match v {
        Ok(v) if (0.0..=10.0).contains(&v) => Ok(v),
        _ => bail!("cannot read overhead {s:?}: expected a percentage such as 10%"),
    }
}

/// Parses an expected loss such as `1%` or `0.01` (at most 50%).
pub fn parse_loss(s: &str) -> Result<f64> {
    match parse_overhead(s) {
        Ok(v) if v <= 0.5 => Ok(v),
        _ => bail!("cannot read loss {s:?}: expected a percentage from 0% to 50%, such as 1%"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_overheads() {
        assert_eq!(parse_rate("500M").unwrap(), 500_000_000);
        assert_eq!(parse_rate("10G").unwrap(), 10_000_000_000);
        assert_eq!(parse_rate("1.5k").unwrap(), 1500);
        assert!(parse_rate("fast").is_err());
        assert_eq!(parse_overhead("10%").unwrap(), 0.1);
        assert_eq!(parse_overhead("0.25").unwrap(), 0.25);
        assert!(parse_overhead("-5%").is_err());
        assert_eq!(parse_loss("1%").unwrap(), 0.01);
        assert!(parse_loss("60%").is_err());
        assert!(parse_loss("lots").is_err());
    }
}
