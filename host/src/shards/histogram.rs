//! Scores in tenths, as the summaries of `run` and `rescore` print them.

/// The bucket of a score in a histogram of tenths: [0, 0.1) is 0, ..., [0.9, 1.0) is 9, and
/// exactly 1.0 is 10.
pub fn score_bucket(score: f64) -> usize {
    if score >= 1.0 {
        10
    } else {
        ((score * 10.0).floor() as usize).min(10)
    }
}

/// "0.0:3 0.5:1 1.0:7", or "-" when empty.
pub fn render_histogram(h: &[usize; 11]) -> String {
    let labels = [
        "0.0", "0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "1.0",
    ];
    let parts: Vec<String> = labels
        .iter()
        .zip(h)
        .filter(|(_, n)| **n > 0)
        .map(|(l, n)| format!("{l}:{n}"))
        .collect();
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(" ")
    }
}
