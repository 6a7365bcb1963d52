//! Timing page loads: sequential GETs with a bearer token over one keep-alive connection per user,
//! the four cases interleaved, each answer checked (200, and on *My projects* the number of rows).

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

/// One kind of page load.
#[derive(Clone)]
pub struct Case {
    /// `member /`, `admin /projects/<name>`, ….
    pub label: String,
    /// (bearer token, path): loaded in turn.
    pub loads: Vec<(String, String)>,
    /// Rows *My projects* must show (`None`: a Project page, or not checked).
    pub rows: Option<usize>,
}

/// The rows of a *My projects* page: its links to projects, less the "New project" link.
fn rows(body: &str) -> usize {
    body.matches("<td><a href=\"/projects/").count()
}

/// Loads `path` once; its time in ms, or why it failed.
async fn load(
    http: &reqwest::Client,
    base: &str,
    case: &Case,
    (token, path): &(String, String),
    rows_wanted: Option<usize>,
) -> Result<f64> {
    let start = Instant::now();
    let answer = http
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await?;
    let status = answer.status();
    let body = answer.text().await?;
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    if status != reqwest::StatusCode::OK {
        bail!(
            "{} {path}: {status}: {}",
            case.label,
            body.chars().take(300).collect::<String>()
        );
    }
    if let Some(wanted) = rows_wanted {
        let got = rows(&body);
        if got < wanted {
            bail!(
                "{} {path}: {got} rows, expected at least {wanted}",
                case.label
            );
        }
    }
    Ok(ms)
}

/// The samples of one case in one phase.
#[derive(Default, Clone)]
pub struct Samples {
    pub ms: Vec<f64>,
    pub errors: usize,
    pub first_error: Option<String>,
}

/// Runs `cycles` rounds of one load per case (the `offset + cycle`-th of its loads), in turn, while `go()` says so (checked before every
/// cycle), after `warmup` cycles that are not counted. One HTTP client per case (a keep-alive
/// connection).
pub async fn run(
    base: &str,
    cases: &[Case],
    offset: usize,
    warmup: usize,
    cycles: usize,
    mut go: impl FnMut() -> bool,
) -> Result<Vec<Samples>> {
    let clients = cases
        .iter()
        .map(|_| {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .pool_max_idle_per_host(1)
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut samples = vec![Samples::default(); cases.len()];
    for cycle in 0..warmup + cycles {
        if cycle >= warmup && !go() {
            break;
        }
        for (i, case) in cases.iter().enumerate() {
            let next = &case.loads[(offset + cycle) % case.loads.len()];
            let wanted = if next.1 == "/" { case.rows } else { None };
            match load(&clients[i], base, case, next, wanted).await {
                Ok(ms) if cycle >= warmup => samples[i].ms.push(ms),
                Ok(_) => {}
                Err(e) if cycle >= warmup => {
                    samples[i].errors += 1;
                    samples[i].first_error.get_or_insert(format!("{e:#}"));
                }
                Err(e) => bail!("warm-up: {e:#}"),
            }
        }
    }
    Ok(samples)
}

/// The `q` quantile (0..=1) of sorted `v`, nearest rank.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// p50, p95, p99, max of `ms`.
pub fn summary(ms: &[f64]) -> [f64; 4] {
    let mut v = ms.to_vec();
    v.sort_by(f64::total_cmp);
    [
        quantile(&v, 0.50),
        quantile(&v, 0.95),
        quantile(&v, 0.99),
        v.last().copied().unwrap_or(f64::NAN),
    ]
}

/// The median of `v` (upper median for an even count), and its range.
pub fn median_range(v: &[f64]) -> (f64, f64, f64) {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match (v.first(), v.last()) {
        (Some(&lo), Some(&hi)) => (v[v.len() / 2], lo, hi),
        _ => (f64::NAN, f64::NAN, f64::NAN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(summary(&v), [50.0, 95.0, 99.0, 100.0]);
        assert_eq!(quantile(&[7.0], 0.95), 7.0);
        assert_eq!(median_range(&[3.0, 1.0, 2.0]), (2.0, 1.0, 3.0));
    }
}
