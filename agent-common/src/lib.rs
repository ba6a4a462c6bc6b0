//! What both Ferry agents need from the host system, in one place:
//!
//! - [`fsx`]: durable, atomic file and directory writes;
//! - [`media`]: where bundles sit in a media directory;
//! - [`units`]: sizes (`4G`, `700M`) and durations (`30d`) on the command line;
//! - [`paths`]: default state directories;
//! - [`progress`]: progress bars for long operations.
//!
//! The bundle format itself lives in `ferry-protocol`, which does no I/O.

#![forbid(unsafe_code)]
#![warn(unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::too_many_lines))]

pub mod docs_gen;
pub mod forms;
pub mod fsx;
pub mod media;
pub mod paths;
pub mod progress;
pub mod units;

/// Makes a closed standard output (`ferry-in status | head -1`) end the
/// process quietly, as Unix tools do, instead of panicking in `println!`.
/// Every other panic still reports as usual.
pub fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(141); // 128 + SIGPIPE, what a shell reports
        }
        default(info);
    }));
}

/// An error and its causes on one line, as the agents print errors.
pub fn one_line(e: &anyhow::Error) -> String {
    e.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A UTC time as `YYYY-MM-DD HH:MM:SSZ`, for messages.
pub fn format_time(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn time_format() {
        assert_eq!(super::format_time(0), "1970-01-01 00:00:00Z");
        assert_eq!(super::format_time(1_700_000_000), "2023-11-14 22:13:20Z");
        assert_eq!(super::format_time(951_782_400), "2000-02-29 00:00:00Z");
    }
}
