//! What the runs of `demo`, `firmware` and `soak` print at the end: a table of metrics with the
//! side each figure comes from, a latency histogram of fixed size (so that a long run does not
//! grow with the number of requests), and the verdict that becomes the exit code.

use core::fmt::Display;
use core::time::Duration;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Instant;

use reauth_testkit::issuer::Counters;

/// A two-column table of metrics, each with the side that measured it (client, issuer, ...).
#[derive(Debug, Default)]
pub(crate) struct Table {
    rows: Vec<(String, String, &'static str)>,
}

impl Table {
    /// Adds a row.
    pub(crate) fn row(&mut self, name: impl Display, value: impl Display, source: &'static str) {
        self.rows.push((name.to_string(), value.to_string(), source));
    }

    /// Adds the client's latency rows: p50, p99 and max of `latencies`.
    pub(crate) fn latency_rows(&mut self, latencies: &Latencies) {
        self.row("latency p50", millis(latencies.percentile(50)), "client");
        self.row("latency p99", millis(latencies.percentile(99)), "client");
        self.row("latency max", millis(latencies.max()), "client");
    }

    /// Prints the table, framed by blank lines.
    pub(crate) fn print(&self) {
        println!();
        println!("  {:<30} {:>14}  from", "metric", "value");
        println!("  {:-<30} {:->14}  {:-<6}", "", "", "");
        for (name, value, source) in &self.rows {
            println!("  {name:<30} {value:>14}  {source}");
        }
        println!();
    }
}

/// The invariants a run checks, collected as readable violations.
#[derive(Debug, Default)]
pub(crate) struct Verdict {
    violations: Vec<String>,
}

impl Verdict {
    /// Records a violation when `violated`.
    pub(crate) fn check(&mut self, violated: bool, what: impl FnOnce() -> String) {
        if violated {
            self.violations.push(what());
        }
    }

    /// The checks every run shares, from the issuer's side: nothing reused, no access token
    /// refreshed twice, and at least one request answered.
    pub(crate) fn issuer_invariants(&mut self, issuer: &Counters, succeeded: u64) {
        self.check(issuer.reuse_attempts > 0, || {
            format!("{} refresh-token reuses", issuer.reuse_attempts)
        });
        self.check(issuer.refreshes_per_access_token_max > 1, || {
            "an access token was refreshed more than once".to_owned()
        });
        self.check(succeeded == 0, || "no request succeeded".to_owned());
    }

    /// Prints `ok_line` or every violation; success exactly when nothing was violated.
    pub(crate) fn print(self, ok_line: &str) -> ExitCode {
        if self.violations.is_empty() {
            println!("  ok: {ok_line}");
            ExitCode::SUCCESS
        } else {
            for v in self.violations {
                println!("  VIOLATED: {v}");
            }
            ExitCode::FAILURE
        }
    }
}

/// What became of a firmware run's requests, on either embedded adapter: answered (with
/// latencies), turned away with "needs login", or failed otherwise (by kind, the first few kept
/// as examples).
#[derive(Debug, Default)]
pub(crate) struct Outcomes {
    /// Requests answered 2xx.
    pub(crate) succeeded: u64,
    /// "Needs login" rejections (expected with `--fault refuse`).
    pub(crate) needs_login: u64,
    /// Failures other than "needs login", by kind.
    failures: BTreeMap<&'static str, u64>,
    /// The first few failures, for the report.
    examples: Vec<String>,
    /// Latencies of the 2xx answers.
    pub(crate) latencies: Latencies,
}

impl Outcomes {
    /// Accounts for an answer with `status` to a request sent at `sent`.
    pub(crate) fn answered(&mut self, status: u16, sent: Instant) {
        if (200..300).contains(&status) {
            self.succeeded += 1;
            self.latencies.record(sent.elapsed());
        } else {
            self.fail(format_args!("status {status}"), "status other than 2xx");
        }
    }

    /// Accounts for a failure of `kind`, described by `what`.
    pub(crate) fn fail(&mut self, what: impl Display, kind: &'static str) {
        *self.failures.entry(kind).or_default() += 1;
        if self.examples.len() < 3 {
            self.examples.push(what.to_string());
        }
    }

    /// Failures other than "needs login".
    pub(crate) fn failed(&self) -> u64 {
        self.failures.values().sum()
    }

    /// Requests with an outcome.
    pub(crate) fn done(&self) -> u64 {
        self.succeeded + self.failed() + self.needs_login
    }

    /// The rows of succeeded, failed (and by kind) and "needs login".
    pub(crate) fn rows(&self, table: &mut Table) {
        table.row("succeeded", self.succeeded, "client");
        table.row("failed", self.failed(), "client");
        for (kind, n) in &self.failures {
            table.row(format_args!("  failed: {kind}"), n, "client");
        }
        table.row("needs-login rejections", self.needs_login, "client");
    }

    /// No failure, and no "needs login" unless the run refused refreshes on purpose.
    pub(crate) fn check(&self, verdict: &mut Verdict, refusals_expected: bool) {
        verdict.check(self.failed() > 0, || {
            let examples = self.examples.iter().map(|e| format!("\n    e.g. {e}"));
            format!("{} requests failed{}", self.failed(), examples.collect::<String>())
        });
        verdict.check(self.needs_login > 0 && !refusals_expected, || {
            format!("{} requests were told to log in again", self.needs_login)
        });
    }
}

/// The kind of failure a request of an embedded adapter met, for [`Outcomes::fail`]: the
/// variants reauth-nal's and reauth-nal-async's `Error` share, named by `$error_type` (each
/// crate has its own type).
macro_rules! failure_kind {
    ($error_type:ident, $error:expr) => {
        match $error {
            $error_type::Rejected(_) => "rejected",
            $error_type::Transport { .. } => "transport",
            $error_type::Timeout(_) => "timeout",
            $error_type::ConnectionClosed => "connection closed",
            $error_type::Http(_) => "invalid HTTP",
            $error_type::ResponseTooLarge { .. } => "response too large",
            _ => "other",
        }
    };
}
pub(crate) use failure_kind;

/// Sub-buckets per power of two: values are kept to within 1/32 (about 3 %).
const SUB_BUCKETS: usize = 32;

/// A latency histogram in microseconds with a fixed number of log-linear buckets (2^36 µs, about
/// 19 hours, and more share the last one), so that recording never allocates and a soak's memory
/// stays flat.
#[derive(Clone, Debug)]
pub(crate) struct Latencies {
    /// `counts[i]` requests fell in bucket `i` (see [`bucket`]).
    counts: Vec<u64>,
    total: u64,
    /// The largest value recorded, exactly, in microseconds.
    max_micros: u64,
}

impl Default for Latencies {
    fn default() -> Self {
        Self { counts: vec![0; 32 * SUB_BUCKETS], total: 0, max_micros: 0 }
    }
}

impl Latencies {
    /// Records one latency.
    pub(crate) fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let index = bucket(micros).min(self.counts.len() - 1);
        if let Some(count) = self.counts.get_mut(index) {
            *count += 1;
        }
        self.total += 1;
        self.max_micros = self.max_micros.max(micros);
    }

    /// Adds every value of `other`.
    pub(crate) fn merge(&mut self, other: &Self) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max_micros = self.max_micros.max(other.max_micros);
    }

    /// The `p`-th percentile (nearest rank), as the lower bound of its bucket; `None` when
    /// empty.
    pub(crate) fn percentile(&self, p: u64) -> Option<Duration> {
        let rank = (self.total * p).div_ceil(100).clamp(1, self.total.max(1));
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank && self.total > 0 {
                return Some(Duration::from_micros(lower_bound(index).min(self.max_micros)));
            }
        }
        None
    }

    /// How many values are at least `threshold` (to within a bucket, 3 %).
    pub(crate) fn at_least(&self, threshold: Duration) -> u64 {
        let micros = u64::try_from(threshold.as_micros()).unwrap_or(u64::MAX);
        self.counts.iter().skip(bucket(micros)).sum()
    }

    /// The histogram as one line of text (`index:count` pairs and the maximum), for a worker
    /// process to hand its latencies to the parent.
    pub(crate) fn encode(&self) -> String {
        let mut line = format!("max:{}", self.max_micros);
        for (index, count) in self.counts.iter().enumerate().filter(|(_, c)| **c > 0) {
            line.push_str(&format!(",{index}:{count}"));
        }
        line
    }

    /// Reads what [`encode`](Self::encode) wrote; `None` for anything else.
    pub(crate) fn decode(line: &str) -> Option<Self> {
        let mut latencies = Self::default();
        for pair in line.split(',') {
            let (key, value) = pair.split_once(':')?;
            let value: u64 = value.parse().ok()?;
            if key == "max" {
                latencies.max_micros = value;
                continue;
            }
            let count = latencies.counts.get_mut(key.parse::<usize>().ok()?)?;
            *count += value;
            latencies.total += value;
        }
        Some(latencies)
    }

    /// The largest value recorded; `None` when empty.
    pub(crate) fn max(&self) -> Option<Duration> {
        (self.total > 0).then(|| Duration::from_micros(self.max_micros))
    }
}

/// The bucket of a value: exact below `SUB_BUCKETS`, then `SUB_BUCKETS` equal steps per power
/// of two.
fn bucket(micros: u64) -> usize {
    let sub = SUB_BUCKETS as u64;
    if micros < sub {
        return micros as usize;
    }
    // The highest set bit is at least log2(SUB_BUCKETS) = 5 here.
    let magnitude = u64::from(63 - micros.leading_zeros()) - 4;
    let offset = (micros >> (magnitude - 1)) - sub;
    (magnitude * sub + offset) as usize
}

/// The smallest value that falls in bucket `index`.
fn lower_bound(index: usize) -> u64 {
    let sub = SUB_BUCKETS as u64;
    let index = index as u64;
    if index < sub {
        return index;
    }
    let (magnitude, offset) = (index / sub, index % sub);
    (sub + offset) << (magnitude - 1)
}

/// A latency for the table: milliseconds with two decimals, `-` for none.
fn millis(latency: Option<Duration>) -> String {
    latency.map_or_else(|| "-".to_owned(), |d| format!("{:.2} ms", d.as_secs_f64() * 1000.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_within_three_percent() {
        for micros in (0..100_000).chain([u64::MAX / 4, 4_294_967_295]) {
            let index = bucket(micros);
            assert!(lower_bound(index) <= micros, "{micros}");
            assert!(lower_bound(index + 1) > micros, "{micros}");
            assert!(micros - lower_bound(index) <= micros / 32, "{micros}");
        }
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut latencies = Latencies::default();
        assert_eq!(latencies.percentile(50), None);
        for ms in 1..=100 {
            latencies.record(Duration::from_millis(ms));
        }
        let p50 = latencies.percentile(50).unwrap().as_micros();
        assert!((48_500..=50_000).contains(&p50), "{p50}");
        assert_eq!(latencies.max(), Some(Duration::from_millis(100)));
        let mut other = Latencies::default();
        other.record(Duration::from_secs(2));
        latencies.merge(&other);
        assert_eq!(latencies.max(), Some(Duration::from_secs(2)));
    }

    #[test]
    fn a_histogram_survives_its_text_form() {
        let mut latencies = Latencies::default();
        for ms in [1, 1, 7, 250, 3_000] {
            latencies.record(Duration::from_millis(ms));
        }
        let decoded = Latencies::decode(&latencies.encode()).unwrap();
        assert_eq!(decoded.counts, latencies.counts);
        assert_eq!((decoded.total, decoded.max()), (5, Some(Duration::from_secs(3))));
        assert!(Latencies::decode("max:1,x:2").is_none());
        assert!(Latencies::decode("max:1,999999:2").is_none());
    }
}
