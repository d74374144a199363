//! The report's charts as inline SVG, drawn with `plotters`' SVG backend (no fonts, no
//! network: text stays text for the browser to render).

use plotters::prelude::*;

const SIZE: (u32, u32) = (560, 300);
const BAR: RGBColor = RGBColor(0x3b, 0x6e, 0xa8);

/// plotters escapes text for SVG itself.
fn plain(s: &str) -> String {
    s.to_string()
}

fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

/// Horizontal bars, one per label, in the order given.
pub fn bars(title: &str, x_desc: &str, labels: &[String], values: &[u64]) -> String {
    let mut svg = String::new();
    let n = labels.len().max(1);
    let height = (90 + 26 * n as u32).max(150);
    let max = values.iter().copied().max().unwrap_or(0).max(1);
    let longest = labels
        .iter()
        .map(|l| l.chars().count().min(40))
        .max()
        .unwrap_or(4);
    let labels: Vec<String> = labels.iter().map(|l| plain(&short(l, 40))).collect();
    {
        let root = SVGBackend::with_string(&mut svg, (SIZE.0 + 60, height)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let chart = ChartBuilder::on(&root)
            .caption(plain(title), ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size((longest as u32 * 7 + 16).clamp(40, 300))
            .build_cartesian_2d(0u64..max + max / 10 + 1, (0u32..n as u32).into_segmented());
        let Ok(mut chart) = chart else {
            return svg_fallback(title);
        };
        let _ = chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc(plain(x_desc))
            .y_labels(n)
            // The first label on top.
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => labels
                    .get((n as u32).wrapping_sub(1).wrapping_sub(*i) as usize)
                    .cloned()
                    .unwrap_or_default(),
                SegmentValue::Last => String::new(),
            })
            .draw();
        let _ = chart.draw_series(values.iter().enumerate().map(|(i, &v)| {
            let i = (n - 1 - i) as u32;
            let mut r = Rectangle::new(
                [(0, SegmentValue::Exact(i)), (v, SegmentValue::Exact(i + 1))],
                BAR.filled(),
            );
            r.set_margin(3, 3, 0, 0);
            r
        }));
        let _ = root.present();
    }
    svg
}

/// How a histogram's bins are laid out.
pub enum Bins {
    /// `n` equal bins over [lo, hi]; the last bin includes hi.
    Fixed { lo: f64, hi: f64, n: usize },
    /// Whole numbers from 0: one bin per value up to 20 values, wider bins beyond.
    Counts,
}

/// A histogram of `values` (which are counted, not measured: the bins are exact).
pub fn histogram(title: &str, x_desc: &str, values: &[f64], bins: Bins) -> String {
    let whole = matches!(bins, Bins::Counts);
    let (lo, hi, n) = match bins {
        Bins::Fixed { lo, hi, n } => (lo, hi, n.max(1)),
        Bins::Counts => {
            let max = values.iter().copied().fold(0.0f64, f64::max).ceil() as u64;
            let width = (max + 1).div_ceil(20).max(1);
            let n = (max + 1).div_ceil(width) as usize;
            (0.0, (n as u64 * width) as f64, n)
        }
    };
    let width = (hi - lo) / n as f64;
    let mut counts = vec![0u64; n];
    for &v in values {
        let i = if width > 0.0 {
            (((v - lo) / width).floor() as i64).clamp(0, n as i64 - 1) as usize
        } else {
            0
        };
        counts[i] += 1;
    }
    let max = counts.iter().copied().max().unwrap_or(0).max(1);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        let _ = root.fill(&WHITE);
        let chart = ChartBuilder::on(&root)
            .caption(plain(title), ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(lo..hi.max(lo + 1e-9), 0u64..max + max / 10 + 1);
        let Ok(mut chart) = chart else {
            return svg_fallback(title);
        };
        let _ = chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc(plain(x_desc))
            .y_desc("rows")
            .x_labels(if whole { (n + 1).min(11) } else { 12 })
            .x_label_formatter(&|v| {
                if (v.round() - v).abs() < 1e-9 {
                    format!("{}", v.round() as i64)
                } else {
                    format!("{v:.2}")
                }
            })
            .draw();
        let _ = chart.draw_series(counts.iter().enumerate().map(|(i, &c)| {
            let x0 = lo + width * i as f64;
            let mut r = Rectangle::new([(x0, 0), (x0 + width, c)], BAR.filled());
            r.set_margin(0, 0, 1, 1);
            r
        }));
        let _ = root.present();
    }
    svg
}

fn svg_fallback(title: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"40\"><text x=\"10\" y=\"25\">{}: no chart</text></svg>",
        SIZE.0,
        plain(title)
    )
}
