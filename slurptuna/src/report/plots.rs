//! The report's plots: inline SVG drawn with plotters' SVG backend (no fonts needed: text is
//! written as `<text>` elements the browser renders). Colours are the Okabe–Ito palette, which
//! stays distinguishable with the common colour-vision deficiencies; trial order is a
//! viridis-like ramp.

use plotters::prelude::*;

/// Okabe–Ito blue: complete trials, bars.
pub(crate) const BLUE: RGBColor = RGBColor(0x00, 0x72, 0xB2);
/// Okabe–Ito vermillion: the best-so-far line, failures.
pub(crate) const VERMILLION: RGBColor = RGBColor(0xD5, 0x5E, 0x00);
/// Okabe–Ito orange: the best trial.
pub(crate) const ORANGE: RGBColor = RGBColor(0xE6, 0x9F, 0x00);
/// Okabe–Ito sky blue: histogram bars.
pub(crate) const SKY: RGBColor = RGBColor(0x56, 0xB4, 0xE9);
/// Running trials.
pub(crate) const GREY: RGBColor = RGBColor(0x99, 0x99, 0x99);

const FONT: &str = "sans-serif";

type Plot = Result<String, String>;

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Viridis-like colour of `t` in `[0, 1]` (early trials dark purple, late ones yellow).
pub(crate) fn ramp(t: f64) -> RGBColor {
    const STOPS: [(u8, u8, u8); 5] = [
        (68, 1, 84),
        (59, 82, 139),
        (33, 145, 140),
        (94, 201, 98),
        (253, 231, 37),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = t * (STOPS.len() - 1) as f64;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f64;
    let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * f).round() as u8;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// `lo..hi` widened by 5 % (and made non-empty).
fn padded(lo: f64, hi: f64) -> std::ops::Range<f64> {
    if !(lo.is_finite() && hi.is_finite()) {
        return 0.0..1.0;
    }
    let span = hi - lo;
    let pad = if span > 0.0 {
        span * 0.05
    } else {
        lo.abs().max(1.0) * 0.05
    };
    (lo - pad)..(hi + pad)
}

fn min_max(xs: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    xs.into_iter()
        .filter(|x| x.is_finite())
        .fold(None, |acc, x| match acc {
            None => Some((x, x)),
            Some((a, b)) => Some((a.min(x), b.max(x))),
        })
}

/// Short tick labels: 4 significant digits.
pub(crate) fn short(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        format!("{v:.2e}")
    } else {
        let s = format!("{v:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    }
}

/// Inline SVG: plotters writes the namespace, which an inline `<svg>` in HTML does not need;
/// dropping it keeps the page free of any URL.
fn finish(svg: String) -> String {
    svg.replace(" xmlns=\"http://www.w3.org/2000/svg\"", "")
        .replace(" xmlns:xlink=\"http://www.w3.org/1999/xlink\"", "")
}

/// One complete trial on the optimisation history.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HistoryPoint {
    pub(crate) trial: f64,
    pub(crate) value: f64,
    pub(crate) stderr: f64,
}

/// Value ± stderr per complete trial (error bars), the best value so far as a line, failed
/// trials as crosses on the lower edge.
///
/// `pruned`: (trial, estimate of its mean when its race stopped it), drawn as hollow circles.
pub(crate) fn history(
    points: &[HistoryPoint],
    failed: &[f64],
    pruned: &[(f64, f64)],
    best_so_far: &[(f64, f64)],
) -> Plot {
    let (y0, y1) = min_max(
        points
            .iter()
            .flat_map(|p| [p.value - p.stderr, p.value + p.stderr])
            .chain(pruned.iter().map(|p| p.1)),
    )
    .ok_or("no complete trial yet")?;
    let (x0, x1) = min_max(
        points
            .iter()
            .map(|p| p.trial)
            .chain(failed.iter().copied())
            .chain(pruned.iter().map(|p| p.0)),
    )
    .ok_or("no trial yet")?;
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (900, 380)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let yr = padded(y0, y1);
        let ylow = yr.start;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(padded(x0, x1), yr)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("trial")
            .y_desc("value (mean over seeds)")
            .y_label_formatter(&|v| short(*v))
            .x_label_formatter(&|v| short(*v))
            .label_style((FONT, 13))
            .light_line_style(RGBColor(0xee, 0xee, 0xee))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(points.iter().map(|p| {
                ErrorBar::new_vertical(
                    p.trial,
                    p.value - p.stderr,
                    p.value,
                    p.value + p.stderr,
                    BLUE.filled(),
                    6,
                )
            }))
            .map_err(err)?
            .label("value ± stderr over seeds")
            .legend(|(x, y)| Circle::new((x + 10, y), 3, BLUE.filled()));
        chart
            .draw_series(LineSeries::new(
                best_so_far.iter().copied(),
                VERMILLION.stroke_width(2),
            ))
            .map_err(err)?
            .label("best so far")
            .legend(|(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], VERMILLION.stroke_width(2))
            });
        if !pruned.is_empty() {
            chart
                .draw_series(
                    pruned
                        .iter()
                        .map(|&(t, v)| Circle::new((t, v), 4, GREY.stroke_width(2))),
                )
                .map_err(err)?
                .label("pruned (estimate)")
                .legend(|(x, y)| Circle::new((x + 10, y), 4, GREY.stroke_width(2)));
        }
        if !failed.is_empty() {
            chart
                .draw_series(
                    failed
                        .iter()
                        .map(|&t| Cross::new((t, ylow), 5, VERMILLION.stroke_width(2))),
                )
                .map_err(err)?
                .label("failed trial")
                .legend(|(x, y)| Cross::new((x + 10, y), 5, VERMILLION.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FONT, 13))
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(finish(buf))
}

/// How a slice plot's x axis shows its parameter.
#[derive(Clone, Debug)]
pub(crate) enum SliceAxis {
    /// Plain numbers.
    Linear,
    /// A log parameter: x is `log10(value)`, labelled with the value.
    Log10,
    /// A categorical: x is the choice's index, points jittered into a strip per choice.
    Categorical(Vec<String>),
}

/// One trial on a slice plot: x (see [`SliceAxis`]), value, trial order in `[0, 1]`.
pub(crate) type SlicePoint = (f64, f64, f64);

/// Value against one parameter, coloured by trial number.
pub(crate) fn slice(name: &str, axis: &SliceAxis, points: &[SlicePoint]) -> Plot {
    let (y0, y1) = min_max(points.iter().map(|p| p.1)).ok_or("no complete trial yet")?;
    let xr = match axis {
        SliceAxis::Categorical(c) => -0.5..(c.len() as f64 - 0.5),
        _ => {
            let (x0, x1) = min_max(points.iter().map(|p| p.0)).ok_or("no complete trial yet")?;
            padded(x0, x1)
        }
    };
    let desc = match axis {
        SliceAxis::Log10 => format!("{name} (log scale)"),
        _ => name.to_string(),
    };
    let label = |v: &f64| -> String {
        match axis {
            SliceAxis::Linear => short(*v),
            SliceAxis::Log10 => short(10f64.powf(*v)),
            SliceAxis::Categorical(c) => {
                let r = v.round();
                if (v - r).abs() < 1e-6 && r >= 0.0 && (r as usize) < c.len() {
                    c[r as usize].clone()
                } else {
                    String::new()
                }
            }
        }
    };
    let n_labels = match axis {
        SliceAxis::Categorical(c) => c.len() * 2 + 1,
        _ => 6,
    };
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (440, 320)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(62)
            .build_cartesian_2d(xr, padded(y0, y1))
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(desc)
            .y_desc("value")
            .x_labels(n_labels)
            .x_label_formatter(&label)
            .y_label_formatter(&|v| short(*v))
            .label_style((FONT, 12))
            .light_line_style(RGBColor(0xee, 0xee, 0xee))
            .draw()
            .map_err(err)?;
        let jitter = matches!(axis, SliceAxis::Categorical(_));
        chart
            .draw_series(points.iter().enumerate().map(|(i, &(x, y, t))| {
                // Deterministic jitter in ±0.25 so a strip's points do not hide each other.
                let dx = if jitter {
                    ((i as f64 * 0.618_033_988_75).fract() - 0.5) * 0.5
                } else {
                    0.0
                };
                Circle::new((x + dx, y), 4, ramp(t).filled())
            }))
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(finish(buf))
}

/// Horizontal bars, most important on top.
pub(crate) fn importance(items: &[(String, f64)]) -> Plot {
    if items.is_empty() {
        return Err("no parameters".into());
    }
    let n = items.len();
    let longest = items
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(1);
    let max = items.iter().map(|(_, v)| *v).fold(0.0, f64::max).max(1e-9);
    let mut buf = String::new();
    {
        let h = (60 + 36 * n) as u32;
        let root = SVGBackend::with_string(&mut buf, (900, h.max(140))).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let names: Vec<&str> = items.iter().map(|(k, _)| k.as_str()).collect();
        let label = |v: &f64| -> String {
            let r = v.round();
            if (v - r).abs() < 1e-6 && r >= 0.0 && (r as usize) < n {
                names[n - 1 - r as usize].to_string()
            } else {
                String::new()
            }
        };
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size((longest * 8 + 20).clamp(50, 260) as u32)
            .build_cartesian_2d(0.0..max * 1.1, -0.5..(n as f64 - 0.5))
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("importance (normalised to sum 1)")
            .y_labels(2 * n + 1)
            .y_label_formatter(&label)
            .x_label_formatter(&|v| short(*v))
            .disable_y_mesh()
            .label_style((FONT, 13))
            .light_line_style(RGBColor(0xee, 0xee, 0xee))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(items.iter().enumerate().map(|(i, (_, v))| {
                let y = (n - 1 - i) as f64;
                Rectangle::new([(0.0, y - 0.35), (*v, y + 0.35)], BLUE.filled())
            }))
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(finish(buf))
}

/// The best trials' values with stderr bars; `labels[i]` names point `i` (`#trial`).
pub(crate) fn best_spread(points: &[(String, f64, f64)]) -> Plot {
    let (y0, y1) = min_max(points.iter().flat_map(|p| [p.1 - p.2, p.1 + p.2]))
        .ok_or("no complete trial yet")?;
    let n = points.len();
    let names: Vec<&str> = points.iter().map(|p| p.0.as_str()).collect();
    let label = |v: &f64| -> String {
        let r = v.round();
        if (v - r).abs() < 1e-6 && r >= 0.0 && (r as usize) < n {
            names[r as usize].to_string()
        } else {
            String::new()
        }
    };
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (900, 340)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5..(n as f64 - 0.5), padded(y0, y1))
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("trial, best first")
            .y_desc("value ± stderr")
            .x_labels(2 * n + 1)
            .x_label_formatter(&label)
            .y_label_formatter(&|v| short(*v))
            .disable_x_mesh()
            .label_style((FONT, 13))
            .light_line_style(RGBColor(0xee, 0xee, 0xee))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(points.iter().enumerate().map(|(i, p)| {
                let c = if i == 0 { ORANGE } else { BLUE };
                ErrorBar::new_vertical(i as f64, p.1 - p.2, p.1, p.1 + p.2, c.stroke_width(2), 10)
            }))
            .map_err(err)?;
        chart
            .draw_series(points.iter().enumerate().map(|(i, p)| {
                let c = if i == 0 { ORANGE } else { BLUE };
                Circle::new((i as f64, p.1), 5, c.filled())
            }))
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(finish(buf))
}

/// Histogram of one trial's per-seed values, with its mean as a vertical line.
pub(crate) fn seed_histogram(values: &[f64]) -> Plot {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let (lo, hi) = min_max(finite.iter().copied()).ok_or("no finite per-seed value")?;
    let n_bins = ((finite.len() as f64).log2().ceil() as usize + 1).clamp(5, 40);
    let width = if hi > lo {
        (hi - lo) / n_bins as f64
    } else {
        1.0
    };
    let mut counts = vec![0u32; n_bins];
    for v in &finite {
        let i = (((v - lo) / width) as usize).min(n_bins - 1);
        counts[i] += 1;
    }
    let mean = finite.iter().sum::<f64>() / finite.len() as f64;
    let top = counts.iter().copied().max().unwrap_or(1) as f64;
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (900, 320)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(padded(lo, lo + width * n_bins as f64), 0.0..top * 1.15)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("per-seed value")
            .y_desc("seeds")
            .x_label_formatter(&|v| short(*v))
            .y_label_formatter(&|v| short(*v))
            .label_style((FONT, 13))
            .light_line_style(RGBColor(0xee, 0xee, 0xee))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(counts.iter().enumerate().map(|(i, c)| {
                let x = lo + i as f64 * width;
                Rectangle::new([(x, 0.0), (x + width, *c as f64)], SKY.filled())
            }))
            .map_err(err)?;
        chart
            .draw_series(counts.iter().enumerate().map(|(i, c)| {
                let x = lo + i as f64 * width;
                Rectangle::new([(x, 0.0), (x + width, *c as f64)], BLUE.stroke_width(1))
            }))
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(
                [(mean, 0.0), (mean, top * 1.1)],
                VERMILLION.stroke_width(2),
            ))
            .map_err(err)?
            .label("mean")
            .legend(|(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], VERMILLION.stroke_width(2))
            });
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FONT, 13))
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(finish(buf))
}

/// How a trial ended, for the timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Complete.
    Complete,
    /// Failed (drawn in vermillion with a cross at its end).
    Failed,
    /// Still running (drawn in grey up to the last recorded time).
    Running,
    /// Pruned by its seed race (drawn in sky blue).
    Pruned,
}

/// One bar per trial: `(trial, start, end, outcome)`, times in seconds since the first start.
pub(crate) fn timeline(bars: &[(f64, f64, f64, Outcome)]) -> Plot {
    let (x0, x1) = min_max(bars.iter().flat_map(|b| [b.1, b.2])).ok_or("no recorded times")?;
    let (t0, t1) = min_max(bars.iter().map(|b| b.0)).ok_or("no recorded times")?;
    let mut buf = String::new();
    {
        let h = (120.0 + (t1 - t0 + 1.0) * 8.0).clamp(260.0, 900.0) as u32;
        let root = SVGBackend::with_string(&mut buf, (900, h)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(padded(x0.min(0.0), x1), (t0 - 0.6)..(t1 + 0.6))
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("seconds since the first trial started")
            .y_desc("trial")
            .x_label_formatter(&|v| short(*v))
            .y_label_formatter(&|v| {
                if (v - v.round()).abs() < 1e-6 {
                    format!("{}", v.round())
                } else {
                    String::new()
                }
            })
            .label_style((FONT, 13))
            .light_line_style(RGBColor(0xee, 0xee, 0xee))
            .draw()
            .map_err(err)?;
        let color = |o: Outcome| match o {
            Outcome::Complete => BLUE,
            Outcome::Failed => VERMILLION,
            Outcome::Running => GREY,
            Outcome::Pruned => SKY,
        };
        // A bar shorter than 0.5 % of the axis is widened so that it stays visible.
        let min_w = (x1 - x0.min(0.0)).max(1e-9) * 0.005;
        chart
            .draw_series(bars.iter().map(|&(t, s, e, o)| {
                Rectangle::new(
                    [(s, t - 0.38), (e.max(s + min_w), t + 0.38)],
                    color(o).filled(),
                )
            }))
            .map_err(err)?
            .label("complete")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], BLUE.filled()));
        let failed: Vec<_> = bars.iter().filter(|b| b.3 == Outcome::Failed).collect();
        if !failed.is_empty() {
            chart
                .draw_series(
                    failed
                        .iter()
                        .map(|b| Cross::new((b.2, b.0), 5, BLACK.stroke_width(2))),
                )
                .map_err(err)?
                .label("failed (×)")
                .legend(|(x, y)| Cross::new((x + 7, y), 5, BLACK.stroke_width(2)));
        }
        if bars.iter().any(|b| b.3 == Outcome::Pruned) {
            chart
                .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
                .map_err(err)?
                .label("pruned")
                .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], SKY.filled()));
        }
        if bars.iter().any(|b| b.3 == Outcome::Running) {
            chart
                .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
                .map_err(err)?
                .label("running")
                .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], GREY.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FONT, 13))
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(finish(buf))
}
