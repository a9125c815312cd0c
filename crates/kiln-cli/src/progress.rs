//! Progress of long reads on stderr: a bar redrawn in place when stderr is a terminal, a plain line every few
//! seconds otherwise (logs, CI). Hand-written, since a line of text is all it takes; stdout is never touched.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use kiln_data::ReadProgress;

/// The share done, from bytes (a CSV file read front to back) or rows (a Parquet file knows its rows).
fn fraction(done: &ReadProgress) -> Option<f64> {
    match (done.bytes, done.total_bytes, done.total_rows) {
        (Some(b), Some(t), _) if t > 0 => Some((b as f64 / t as f64).min(1.0)),
        (_, _, Some(t)) if t > 0 => Some((done.rows as f64 / t as f64).min(1.0)),
        _ => None,
    }
}

/// Prints the progress of one piece of work (see the module documentation).
#[derive(Debug)]
pub(crate) struct Bar {
    what: &'static str,
    /// the command's start, for the `[  1.2s]` prefix the other step lines have
    origin: Instant,
    start: Instant,
    terminal: bool,
    every: Duration,
    last: Option<Instant>,
    drawn: bool,
}

impl Bar {
    /// A bar for `what` (e.g. "scoring"), timed from now; the prefix counts from `origin`.
    pub(crate) fn new(what: &'static str, origin: Instant) -> Bar {
        let terminal = std::io::stderr().is_terminal();
        let every = if terminal { Duration::from_millis(100) } else { Duration::from_secs(10) };
        Bar { what, origin, start: Instant::now(), terminal, every, last: None, drawn: false }
    }

    /// Shows `done` if enough time passed since the last update.
    pub(crate) fn update(&mut self, done: ReadProgress) {
        let now = Instant::now();
        let due = match self.last {
            Some(last) => now.duration_since(last) >= self.every,
            // the first plain line only after a while: short work prints none
            None => self.terminal || now.duration_since(self.start) >= self.every,
        };
        if due {
            self.last = Some(now);
            self.draw(done);
        }
    }

    /// Clears the bar (terminal) so that the next line starts clean.
    pub(crate) fn finish(&mut self) {
        if self.terminal && self.drawn {
            eprint!("\r\x1b[2K");
            let _ = std::io::stderr().flush();
            self.drawn = false;
        }
    }

    fn draw(&mut self, done: ReadProgress) {
        let line = self.line(done);
        if self.terminal {
            eprint!("\r\x1b[2K{line}");
            let _ = std::io::stderr().flush();
            self.drawn = true;
        } else {
            eprintln!("{line}");
        }
    }

    fn line(&self, done: ReadProgress) -> String {
        let secs = self.start.elapsed().as_secs_f64();
        let rate = if secs > 0.0 { done.rows as f64 / secs } else { 0.0 };
        let mut line = format!("[{:>6.1}s] {}", self.origin.elapsed().as_secs_f64(), self.what);
        if let Some(f) = fraction(&done) {
            if self.terminal {
                const WIDTH: usize = 24;
                let filled = (f * WIDTH as f64).round() as usize;
                line.push_str(&format!(" [{}{}]", "#".repeat(filled), " ".repeat(WIDTH - filled.min(WIDTH))));
            }
            line.push_str(&format!(" {:>3.0}%", f * 100.0));
        }
        line.push_str(&format!(", {} rows, {} rows/s", thousands(done.rows), thousands(rate as u64)));
        if let (Some(b), Some(t)) = (done.bytes, done.total_bytes) {
            line.push_str(&format!(", {:.1}/{:.1} MB read", b as f64 / 1e6, t as f64 / 1e6));
        }
        line
    }
}

/// `1234567` -> `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests;
