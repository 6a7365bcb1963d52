//! One row per run (raw figures, JSON lines) and the summary: median and spread (min–max) of each
//! figure per N and variant, with ratios of medians.

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::json;

/// What one run of one variant measured.
#[derive(Debug, Clone)]
pub struct Run {
    pub n: usize,
    pub variant: &'static str,
    pub repeat: usize,
    /// From the first create until every object was done.
    pub seconds: f64,
    /// The controller's API requests during onboarding, per object (leases excluded).
    pub requests_per_object: f64,
    /// The controller's writes while nothing changed, over `steady_seconds` (leases excluded).
    pub steady_writes: Option<usize>,
    pub steady_seconds: f64,
    /// Lease writes over the same window.
    pub lease_writes: Option<usize>,
    /// Writes of the full re-reconcile after a restart (every object, nothing changed).
    pub restart_writes: Option<usize>,
    /// The controller's resync period, in seconds.
    pub resync_period_seconds: Option<f64>,
    /// Whether the re-reconcile after a restart is exactly what a resync does (Kubeflow: its
    /// reconcile keeps no state, and a resync re-delivers every object from the same informer
    /// cache a restart rebuilds). Berth's resync runs with its caches warm, so its restart is a
    /// different, harder case, and only a window at least one resync period long measures it.
    pub restart_is_resync: bool,
    pub peak_rss_mib: Option<f64>,
    pub cpu_seconds: Option<f64>,
    /// The machine's 1-minute load average at the start and at the end of the run.
    pub load: (f64, f64),
}

impl Run {
    /// Writes per hour in the steady state, over at least one full resync period: the window's
    /// writes scaled to an hour when the window covers a period; otherwise, where a restart is
    /// exactly a resync, the window's rate plus the restart's writes once per period. `None` when
    /// neither covers a period.
    pub fn steady_writes_per_hour(&self) -> Option<f64> {
        let window = self.steady_writes? as f64 * 3600.0 / self.steady_seconds;
        let period = self.resync_period_seconds?;
        if self.steady_seconds >= period {
            return Some(window);
        }
        match self.restart_writes {
            Some(w) if self.restart_is_resync && period > 0.0 => {
                Some(window + w as f64 * 3600.0 / period)
            }
            _ => None,
        }
    }

    pub fn json(&self) -> serde_json::Value {
        json!({
            "n": self.n, "variant": self.variant, "repeat": self.repeat,
            "seconds": self.seconds, "requests_per_object": self.requests_per_object,
            "steady_writes": self.steady_writes, "steady_seconds": self.steady_seconds,
            "lease_writes": self.lease_writes, "restart_writes": self.restart_writes,
            "resync_period_seconds": self.resync_period_seconds,
            "restart_is_resync": self.restart_is_resync,
            "steady_writes_per_hour": self.steady_writes_per_hour(),
            "peak_rss_mib": self.peak_rss_mib, "cpu_seconds": self.cpu_seconds,
            "load_start": self.load.0, "load_end": self.load.1,
        })
    }
}

/// Median and range of some figures; `None` when there are none.
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

pub fn spread(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
    let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    let median = if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    };
    Some(Spread {
        median,
        min: v[0],
        max: v[v.len() - 1],
    })
}

fn cell(s: Option<Spread>, digits: usize) -> String {
    match s {
        None => "-".into(),
        Some(s) if s.min == s.max => format!("{:.digits$}", s.median),
        Some(s) => format!(
            "{:.digits$} ({:.digits$}–{:.digits$})",
            s.median, s.min, s.max
        ),
    }
}

/// The steady window's writes (leases excluded) and its length.
fn window(rs: &[&Run]) -> String {
    match spread(rs.iter().filter_map(|r| r.steady_writes.map(|w| w as f64))) {
        None => "-".into(),
        Some(s) => {
            let seconds = spread(rs.iter().map(|r| r.steady_seconds)).map_or(0.0, |s| s.median);
            format!("{} in {seconds:.0} s", cell(Some(s), 0))
        }
    }
}

/// Prints the summary table on stdout.
pub fn print_summary(runs: &[Run], out: &mut impl Write) -> std::io::Result<()> {
    let mut by: BTreeMap<(usize, &str), Vec<&Run>> = BTreeMap::new();
    for r in runs {
        by.entry((r.n, r.variant)).or_default().push(r);
    }
    let median_seconds = |n: usize, variant: &str| {
        by.get(&(n, variant))
            .and_then(|rs| spread(rs.iter().map(|r| r.seconds)))
            .map(|s| s.median)
    };
    writeln!(
        out,
        "| N | variant | runs | time to all done (s) | vs floor | vs Kubeflow | API requests / object | writes in the steady window | steady writes / h (full period) | writes after a restart | peak RSS (MiB) | CPU (s) | load (1 min) |"
    )?;
    writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|---|")?;
    for ((n, variant), rs) in &by {
        let time = spread(rs.iter().map(|r| r.seconds));
        let ratio = |other: &str| match (time.as_ref(), median_seconds(*n, other)) {
            (Some(t), Some(o)) if o > 0.0 => format!("{:.2}×", t.median / o),
            _ => "-".into(),
        };
        let (vs_floor, vs_kubeflow) = (ratio("floor"), ratio("kubeflow"));
        writeln!(
            out,
            "| {n} | {variant} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            rs.len(),
            cell(time, 2),
            vs_floor,
            vs_kubeflow,
            cell(spread(rs.iter().map(|r| r.requests_per_object)), 1),
            window(rs),
            cell(
                spread(rs.iter().filter_map(|r| r.steady_writes_per_hour())),
                0
            ),
            cell(
                spread(rs.iter().filter_map(|r| r.restart_writes.map(|w| w as f64))),
                0
            ),
            cell(spread(rs.iter().filter_map(|r| r.peak_rss_mib)), 1),
            cell(spread(rs.iter().filter_map(|r| r.cpu_seconds)), 2),
            cell(spread(rs.iter().flat_map(|r| [r.load.0, r.load.1])), 1),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let s = spread([3.0, 1.0, 2.0]).map(|s| (s.median, s.min, s.max));
        assert_eq!(s, Some((2.0, 1.0, 3.0)));
        let s = spread([4.0, 1.0, 2.0, 3.0]).map(|s| s.median);
        assert_eq!(s, Some(2.5));
        assert!(spread([]).is_none());
    }
}
