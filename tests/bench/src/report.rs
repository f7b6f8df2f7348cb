//! Results: per-run values, medians, markdown and JSON.

use serde_json::{Value, json};

/// One scenario (at one size): every run's `(metric, value)` in a fixed order.
pub struct Section {
    pub id: u8,
    pub title: String,
    pub runs: Vec<Vec<(String, f64)>>,
    pub notes: Vec<String>,
    pub error: Option<String>,
}

impl Section {
    pub fn new(id: u8, title: impl Into<String>) -> Self {
        Self { id, title: title.into(), runs: Vec::new(), notes: Vec::new(), error: None }
    }

    /// Metric names in first-seen order with median, min, max over runs.
    pub fn summary(&self) -> Vec<(String, f64, f64, f64)> {
        let mut names: Vec<&String> = Vec::new();
        for run in &self.runs {
            for (n, _) in run {
                if !names.contains(&n) {
                    names.push(n);
                }
            }
        }
        names
            .into_iter()
            .map(|name| {
                let mut v: Vec<f64> = self.runs.iter().filter_map(|r| r.iter().find(|(n, _)| n == name).map(|(_, v)| *v)).collect();
                v.sort_by(f64::total_cmp);
                (name.clone(), median(&v), v[0], v[v.len() - 1])
            })
            .collect()
    }

    pub fn markdown(&self) -> String {
        let mut s = format!("### Scenario {}: {}\n\n", self.id, self.title);
        if let Some(e) = &self.error {
            s.push_str(&format!("**Failed**: {e}\n\n"));
        }
        if !self.runs.is_empty() {
            s.push_str(&format!("Runs: {}. Median (min – max).\n\n| metric | median | min – max |\n|---|---|---|\n", self.runs.len()));
            for (name, med, min, max) in self.summary() {
                s.push_str(&format!("| {name} | {} | {} – {} |\n", fmt(med), fmt(min), fmt(max)));
            }
            s.push('\n');
        }
        for n in &self.notes {
            s.push_str(&format!("- {n}\n"));
        }
        if !self.notes.is_empty() {
            s.push('\n');
        }
        s
    }

    pub fn json(&self) -> Value {
        let runs: Vec<Value> = self.runs.iter().map(|r| Value::Object(r.iter().map(|(k, v)| (k.clone(), json!(v))).collect())).collect();
        let medians: serde_json::Map<String, Value> = if self.runs.is_empty() { Default::default() } else { self.summary().into_iter().map(|(k, m, _, _)| (k, json!(m))).collect() };
        json!({"id": self.id, "title": self.title, "runs": runs, "medians": medians, "notes": self.notes, "error": self.error})
    }
}

pub fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 }
}

/// Percentile of sorted values (nearest rank).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn fmt(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e12 {
        format!("{v:.0}")
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// CPU model, cores, memory, kernel and load average.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split_once(':')).map(|(_, m)| m.trim().to_string()).unwrap_or_default();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = mem.lines().find(|l| l.starts_with("MemTotal")).and_then(|l| l.split_whitespace().nth(1)).and_then(|k| k.parse::<f64>().ok()).map(|k| k / 1024.0 / 1024.0).unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} cores ({model}), {mem_gib:.1} GiB, Linux {}, load average {}", kernel.trim(), load())
}

pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_percentiles() {
        assert_eq!(median(&[1.0, 2.0, 10.0]), 2.0);
        assert_eq!(median(&[1.0, 2.0, 3.0, 10.0]), 2.5);
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[5.0], 99.0), 5.0);
    }
}
