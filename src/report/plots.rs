//! SVG plots through plotters' SVG backend (no bitmap or font features: SVG text is laid out
//! by the viewer, so no system fonts are needed to draw).
//!
//! Conventions, so that an overlay of a sweep reads at a glance: one colour per run; raw weights
//! as a solid line with filled dots, EMA as a dashed line with hollow dots; in scatters raw as
//! filled dots, EMA as hollow ones.

use std::ops::Range;

use anyhow::{anyhow, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::metrics_file::Series;

const SIZE: (u32, u32) = (760, 420);
const CAPTION_FONT: (&str, u32) = ("sans-serif", 18);

/// Distinct colours for up to 10 runs (Tableau 10), then they repeat.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

pub fn run_colour(run_index: usize) -> RGBColor {
    PALETTE[run_index % PALETTE.len()]
}

/// One run's raw and EMA series of a quantity over steps.
pub struct LineSet<'a> {
    /// Legend prefix: the run's label in an overlay, empty for a single run.
    pub label: &'a str,
    pub colour: RGBColor,
    pub raw: &'a Series,
    pub ema: &'a Series,
}

/// One run's (Δval loss, Δmetric) points, raw and EMA.
pub struct ScatterSet<'a> {
    pub label: &'a str,
    pub colour: RGBColor,
    pub raw: &'a [(f64, f64)],
    pub ema: &'a [(f64, f64)],
}

/// A line plot over steps, as SVG text; `None` when no set has a point.
pub fn line_plot_svg(title: &str, y_desc: &str, sets: &[LineSet]) -> Result<Option<String>> {
    let points = |s: &Series| -> Vec<(f64, f64)> {
        s.steps
            .iter()
            .zip(&s.values)
            .filter(|(_, v)| v.is_finite())
            .map(|(step, v)| (*step as f64, *v))
            .collect()
    };
    let all: Vec<(f64, f64)> = sets
        .iter()
        .flat_map(|s| points(s.raw).into_iter().chain(points(s.ema)))
        .collect();
    let (Some(x_range), Some(y_range)) = (
        padded_range(all.iter().map(|p| p.0)),
        padded_range(all.iter().map(|p| p.1)),
    ) else {
        return Ok(None);
    };
    let y_range_for_ticks = y_range.clone();
    let fail = |e: &dyn std::fmt::Display| anyhow!("cannot draw the plot {title:?}: {e}");
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, CAPTION_FONT)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(x_range, y_range)
            .map_err(|e| fail(&e))?;
        let y_ticks = tick_formatter(&y_range_for_ticks);
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc(y_desc)
            .x_label_formatter(&|step: &f64| format!("{step:.0}"))
            .y_label_formatter(&y_ticks)
            .light_line_style(BLACK.mix(0.05))
            .draw()
            .map_err(|e| fail(&e))?;
        for set in sets {
            let colour = set.colour;
            let solid = colour.stroke_width(2);
            let raw = points(set.raw);
            if !raw.is_empty() {
                chart
                    .draw_series(LineSeries::new(raw.clone(), solid))
                    .map_err(|e| fail(&e))?
                    .label(legend_text(set.label, "raw"))
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], solid));
                chart
                    .draw_series(raw.iter().map(|p| Circle::new(*p, 2, colour.filled())))
                    .map_err(|e| fail(&e))?;
            }
            let ema = points(set.ema);
            if !ema.is_empty() {
                chart
                    .draw_series(DashedLineSeries::new(ema.clone(), 6, 4, solid))
                    .map_err(|e| fail(&e))?
                    .label(legend_text(set.label, "EMA"))
                    .legend(move |(x, y)| {
                        DashedPathElement::new(vec![(x, y), (x + 24, y)], 6, 4, solid)
                    });
                chart
                    .draw_series(
                        ema.iter()
                            .map(|p| Circle::new(*p, 2, colour.stroke_width(1))),
                    )
                    .map_err(|e| fail(&e))?;
            }
        }
        draw_legend(&mut chart).map_err(|e| fail(&e))?;
        root.present().map_err(|e| fail(&e))?;
    }
    Ok(Some(svg))
}

/// One line of [`xy_plot_svg`]: its legend label, colour and points.
pub type XyLine = (String, RGBColor, Vec<(f64, f64)>);

/// Lines over a continuous x (e.g. the landscape probe's slices), as SVG text: each line a
/// label, a colour and its points; `None` when there is no finite point.
pub fn xy_plot_svg(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    lines: &[XyLine],
) -> Result<Option<String>> {
    let finite = |pts: &[(f64, f64)]| -> Vec<(f64, f64)> {
        pts.iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect()
    };
    let all: Vec<(f64, f64)> = lines.iter().flat_map(|l| finite(&l.2)).collect();
    let (Some(x_range), Some(y_range)) = (
        padded_range(all.iter().map(|p| p.0)),
        padded_range(all.iter().map(|p| p.1)),
    ) else {
        return Ok(None);
    };
    let y_ticks = tick_formatter(&y_range);
    let x_ticks = tick_formatter(&x_range);
    let fail = |e: &dyn std::fmt::Display| anyhow!("cannot draw the plot {title:?}: {e}");
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, CAPTION_FONT)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(x_range, y_range)
            .map_err(|e| fail(&e))?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_label_formatter(&x_ticks)
            .y_label_formatter(&y_ticks)
            .light_line_style(BLACK.mix(0.05))
            .draw()
            .map_err(|e| fail(&e))?;
        for (label, colour, pts) in lines {
            let pts = finite(pts);
            if pts.is_empty() {
                continue;
            }
            let style = colour.stroke_width(2);
            chart
                .draw_series(LineSeries::new(pts.clone(), style))
                .map_err(|e| fail(&e))?
                .label(label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
            chart
                .draw_series(pts.iter().map(|p| Circle::new(*p, 2, colour.filled())))
                .map_err(|e| fail(&e))?;
        }
        draw_legend(&mut chart).map_err(|e| fail(&e))?;
        root.present().map_err(|e| fail(&e))?;
    }
    Ok(Some(svg))
}

/// A scatter of Δval loss (x) against Δmetric (y), with the axes through 0 drawn, as SVG
/// text; `None` when no set has a point.
pub fn scatter_plot_svg(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    sets: &[ScatterSet],
) -> Result<Option<String>> {
    let all: Vec<(f64, f64)> = sets
        .iter()
        .flat_map(|s| s.raw.iter().chain(s.ema))
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    if all.is_empty() {
        return Ok(None);
    }
    // Zero is always in range: which quadrant the points fall in is the point of the plot.
    let (Some(x_range), Some(y_range)) = (
        padded_range(all.iter().map(|p| p.0).chain([0.0])),
        padded_range(all.iter().map(|p| p.1).chain([0.0])),
    ) else {
        return Ok(None);
    };
    let fail = |e: &dyn std::fmt::Display| anyhow!("cannot draw the plot {title:?}: {e}");
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, CAPTION_FONT)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(x_range.clone(), y_range.clone())
            .map_err(|e| fail(&e))?;
        let (x_ticks, y_ticks) = (tick_formatter(&x_range), tick_formatter(&y_range));
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_label_formatter(&x_ticks)
            .y_label_formatter(&y_ticks)
            .light_line_style(BLACK.mix(0.05))
            .draw()
            .map_err(|e| fail(&e))?;
        let axis = BLACK.mix(0.35).stroke_width(1);
        chart
            .draw_series(LineSeries::new(
                [(x_range.start, 0.0), (x_range.end, 0.0)],
                axis,
            ))
            .map_err(|e| fail(&e))?;
        chart
            .draw_series(LineSeries::new(
                [(0.0, y_range.start), (0.0, y_range.end)],
                axis,
            ))
            .map_err(|e| fail(&e))?;
        for set in sets {
            let colour = set.colour;
            if !set.raw.is_empty() {
                chart
                    .draw_series(set.raw.iter().map(|p| Circle::new(*p, 3, colour.filled())))
                    .map_err(|e| fail(&e))?
                    .label(legend_text(set.label, "raw"))
                    .legend(move |(x, y)| Circle::new((x + 12, y), 3, colour.filled()));
            }
            if !set.ema.is_empty() {
                let hollow = colour.stroke_width(2);
                chart
                    .draw_series(set.ema.iter().map(|p| Circle::new(*p, 3, hollow)))
                    .map_err(|e| fail(&e))?
                    .label(legend_text(set.label, "EMA"))
                    .legend(move |(x, y)| Circle::new((x + 12, y), 3, hollow));
            }
        }
        draw_legend(&mut chart).map_err(|e| fail(&e))?;
        root.present().map_err(|e| fail(&e))?;
    }
    Ok(Some(svg))
}

fn draw_legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()
}

fn legend_text(run_label: &str, weights: &str) -> String {
    if run_label.is_empty() {
        weights.to_string()
    } else {
        format!("{run_label} {weights}")
    }
}

/// Tick labels with as many decimals as the range needs (about 10 ticks), and no "-0.00".
fn tick_formatter(range: &Range<f64>) -> impl Fn(&f64) -> String {
    let span = (range.end - range.start).abs();
    let decimals = if span > 0.0 {
        (-(span / 10.0).log10().floor()).clamp(0.0, 12.0) as usize
    } else {
        2
    };
    move |v: &f64| {
        let text = format!("{v:.decimals$}");
        if text.parse::<f64>() == Ok(0.0) {
            format!("{:.decimals$}", 0.0)
        } else {
            text
        }
    }
}

/// min..max of the finite values, padded by 5% (a constant series gets a band around it).
fn padded_range(values: impl Iterator<Item = f64>) -> Option<Range<f64>> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold(None, |acc: Option<(f64, f64)>, v| {
            Some(acc.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))))
        })?;
    let pad = if hi > lo {
        (hi - lo) * 0.05
    } else {
        (lo.abs() * 0.05).max(1e-6)
    };
    Some(lo - pad..hi + pad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_pad_and_handle_constants() {
        assert_eq!(padded_range([0.0, 10.0].into_iter()), Some(-0.5..10.5));
        let r = padded_range([2.0, 2.0, f64::NAN].into_iter()).expect("range");
        assert!(r.start < 2.0 && r.end > 2.0);
        let ticks = tick_formatter(&(-0.2..0.3));
        assert_eq!(ticks(&-0.0001), "0.00");
        assert_eq!(ticks(&0.15), "0.15");
        assert_eq!(tick_formatter(&(0.0..400.0))(&50.0), "50");
        assert_eq!(padded_range(std::iter::empty()), None);
    }

    #[test]
    fn a_line_plot_is_svg_with_a_polyline_per_series() {
        let raw = Series {
            steps: vec![10, 20, 30, 40],
            values: vec![1.0, 2.0, 1.0, 2.0],
        };
        let ema = Series {
            steps: vec![10, 20, 30, 40],
            values: vec![1.0, 1.2, 1.3, 1.4],
        };
        let svg = line_plot_svg(
            "rep4 (greedy)",
            "rep4",
            &[LineSet {
                label: "",
                colour: run_colour(0),
                raw: &raw,
                ema: &ema,
            }],
        )
        .expect("draws")
        .expect("has points");
        assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
        assert!(svg.contains("<polyline"));
        assert!(svg.contains("rep4 (greedy)"));
        assert!(svg.trim_end().ends_with("</svg>"));
        let empty = Series::default();
        let none = line_plot_svg(
            "x",
            "x",
            &[LineSet {
                label: "",
                colour: run_colour(0),
                raw: &empty,
                ema: &empty,
            }],
        )
        .expect("no error");
        assert!(none.is_none());
    }
}
