//! Progress for long operations: a bar on a terminal, nothing on a pipe (the
//! agents print a summary line when each step ends).

use indicatif::{ProgressBar, ProgressStyle};

/// A byte-counting progress bar with a message.
pub fn bytes(total: u64, msg: &str) -> ProgressBar {
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template(
            "{msg:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    pb.set_message(msg.to_string());
    pb
}

/// A spinner counting bytes when the total is unknown.
pub fn spinner(msg: &str) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{msg:>12} {spinner} {bytes} {bytes_per_sec}")
            .expect("valid template"),
    );
    pb.set_message(msg.to_string());
    pb
}
