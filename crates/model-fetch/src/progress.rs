//! Progress lines on stderr at a modest rate.

use std::time::{Duration, Instant};

pub(crate) struct Progress {
    label: String,
    total: Option<u64>,
    done: u64,
    start: Instant,
    start_bytes: u64,
    last: Instant,
    interval: Option<Duration>,
}

impl Progress {
    pub(crate) fn new(label: String, interval: Option<Duration>) -> Self {
        let now = Instant::now();
        Progress {
            label,
            total: None,
            done: 0,
            start: now,
            start_bytes: 0,
            last: now,
            interval,
        }
    }

    /// (Re)starts counting at `done` bytes of `total`.
    pub(crate) fn restart(&mut self, done: u64, total: Option<u64>) {
        self.done = done;
        self.start_bytes = done;
        self.total = total;
        self.start = Instant::now();
        self.last = self.start;
    }

    pub(crate) fn add(&mut self, n: u64) {
        self.done += n;
        if let Some(iv) = self.interval
            && self.last.elapsed() >= iv
        {
            self.last = Instant::now();
            self.print("");
        }
    }

    pub(crate) fn finish(&mut self) {
        if self.interval.is_some() {
            self.print(" done");
        }
    }

    fn print(&self, suffix: &str) {
        let secs = self.start.elapsed().as_secs_f64().max(1e-3);
        let rate = (self.done.saturating_sub(self.start_bytes)) as f64 / secs;
        let amount = match self.total {
            Some(t) if t > 0 => format!(
                "{} / {} ({:.0}%)",
                human(self.done),
                human(t),
                (self.done as f64 * 100.0 / t as f64).min(100.0)
            ),
            Some(_) => human(self.done),
            None => format!("{} (size unknown)", human(self.done)),
        };
        eprintln!(
            "berth-model-fetch: {}: {amount} at {}/s{suffix}",
            self.label,
            human(rate as u64)
        );
    }
}

pub(crate) fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}
