//! Printing benchmark results: one aligned table per benchmark, ratios against the baseline of the same run.

/// Prints a Markdown table with a header row under a title.
pub fn table(title: &str, header: &[&str], rows: &[Vec<String>]) {
    println!("\n## {title}");
    println!("{}", homeboy_client::text_table::markdown(header, rows));
}

/// The columns of a load result: name, req/s, p50 ms, p99 ms, errors, and req/s as a ratio to `baseline`.
pub fn load_row(name: &str, result: &super::load::LoadResult, baseline_rps: f64) -> Vec<String> {
    vec![
        name.to_string(),
        format!("{:.0}", result.rps),
        format!("{:.3}", result.p50_ms),
        format!("{:.3}", result.p99_ms),
        result.errors.to_string(),
        ratio(result.rps, baseline_rps),
    ]
}

/// `0.93x`.
pub fn ratio(value: f64, baseline: f64) -> String {
    if baseline <= 0.0 {
        return "n/a".to_string();
    }
    format!("{:.2}x", value / baseline)
}

/// A verdict against a target, for the last column.
pub fn verdict(ok: bool) -> String {
    if ok {
        "meets target".into()
    } else {
        "MISSES target".into()
    }
}

/// Median of a list of samples.
pub fn median(samples: &mut [f64]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[samples.len() / 2]
}
