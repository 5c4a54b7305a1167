//! Per-op timing of graph runs, for `IRIS_PROFILE=1`: every step is timed to completion
//! (the backend is synchronized after each op, so GPU figures are per kernel, not per
//! launch), summed per op label (op, output shape, operand dtypes) over the executor's life,
//! and printed to stderr when the executor is dropped. Off by default: timing adds a
//! synchronization per op. The table is preallocated, so a profiled decode step still
//! allocates nothing.

use std::time::{Duration, Instant};

/// Summed time per step of one executor; steps that share a label are merged in the report.
pub(crate) struct OpProfile {
    labels: Vec<String>,
    spent: Vec<Duration>,
    runs: usize,
}

/// Whether `IRIS_PROFILE` asks for per-op timing.
pub(crate) fn requested() -> bool {
    std::env::var("IRIS_PROFILE").is_ok_and(|v| !v.is_empty() && v != "0")
}

impl OpProfile {
    pub(crate) fn new(labels: Vec<String>) -> Self {
        let spent = vec![Duration::ZERO; labels.len()];
        OpProfile {
            labels,
            spent,
            runs: 0,
        }
    }

    pub(crate) fn record(&mut self, step: usize, started: Instant) {
        self.spent[step] += started.elapsed();
    }

    pub(crate) fn finish_run(&mut self) {
        self.runs += 1;
    }

    /// Rows `(label, steps per run, ms per run)`, slowest first.
    pub(crate) fn summary(&self) -> Vec<(String, usize, f64)> {
        let mut rows: Vec<(String, usize, f64)> = Vec::new();
        for (label, spent) in self.labels.iter().zip(&self.spent) {
            let ms = spent.as_secs_f64() * 1e3 / self.runs.max(1) as f64;
            match rows.iter_mut().find(|(l, _, _)| l == label) {
                Some(row) => {
                    row.1 += 1;
                    row.2 += ms;
                }
                None => rows.push((label.clone(), 1, ms)),
            }
        }
        rows.sort_by(|a, b| b.2.total_cmp(&a.2));
        rows
    }

    /// The report printed at drop: one line per label with its share of the run.
    pub(crate) fn report(&self, title: &str) -> String {
        let rows = self.summary();
        let total: f64 = rows.iter().map(|r| r.2).sum();
        let mut out = format!(
            "profile of {title}: {} runs, {total:.3} ms per run\n{:>9} {:>6} {:>5}  op\n",
            self.runs, "ms/run", "steps", "%"
        );
        for (label, steps, ms) in rows {
            let share = if total > 0.0 { 100.0 * ms / total } else { 0.0 };
            out += &format!("{ms:>9.3} {steps:>6} {share:>5.1}  {label}\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_labels_and_averages_over_runs() {
        let mut p = OpProfile::new(vec!["a".into(), "b".into(), "a".into()]);
        p.spent = vec![
            Duration::from_millis(4),
            Duration::from_millis(10),
            Duration::from_millis(2),
        ];
        p.finish_run();
        p.finish_run();
        let rows = p.summary();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].0.as_str(), rows[0].1), ("b", 1));
        assert!((rows[0].2 - 5.0).abs() < 1e-9);
        assert_eq!((rows[1].0.as_str(), rows[1].1), ("a", 2));
        assert!((rows[1].2 - 3.0).abs() < 1e-9);
        let report = p.report("g");
        assert!(report.contains("2 runs, 8.000 ms per run"), "{report}");
    }
}
