//! `chart.png`: pass rate against cost per case (left) and the cumulative distribution of
//! latency (right; thick lines total, thin lines first token), one colour per candidate.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::FontStyle;

use super::report::{usd, Report};

pub const WIDTH: u32 = 1200;
pub const HEIGHT: u32 = 500;

/// DejaVu Sans (licence in font/LICENSE), compiled in so the chart draws the same text on a
/// machine without fontconfig or any system font.
static FONT: &[u8] = include_bytes!("font/DejaVuSans.ttf");

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

pub fn draw(r: &Report, path: &Path) -> Result<(), String> {
    static REGISTER: std::sync::Once = std::sync::Once::new();
    let mut font_ok = true;
    REGISTER.call_once(|| font_ok = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_ok());
    if !font_ok {
        return Err("the embedded chart font could not be loaded".into());
    }
    let err = |e: &dyn std::fmt::Display| format!("cannot draw {}: {e}", path.display());
    let mut rgb = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let (left, right) = root.split_horizontally(WIDTH / 2);
        pass_vs_cost(r, &left).map_err(|e| err(&e))?;
        latency_cdf(r, &right).map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    write_png(&rgb, path).map_err(|e| err(&e))
}

fn write_png(rgb: &[u8], path: &Path) -> Result<(), png::EncodingError> {
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut enc = png::Encoder::new(file, WIDTH, HEIGHT);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    // The chart goes into repositories and READMEs: a smaller file is worth the milliseconds.
    enc.set_compression(png::Compression::Best);
    let mut w = enc.write_header()?;
    w.write_image_data(rgb)?;
    w.finish()
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;
type DrawResult = Result<(), DrawingAreaErrorKind<<BitMapBackend<'static> as DrawingBackend>::ErrorType>>;

fn pass_vs_cost(r: &Report, area: &Area) -> DrawResult {
    let points: Vec<(f64, f64, usize)> =
        r.candidates.iter().enumerate().filter_map(|(i, c)| Some((c.cost_per_case_usd.unwrap_or(0.0), c.pass_rate? * 100.0, i))).collect();
    let max_cost = points.iter().map(|p| p.0).fold(0.0, f64::max);
    let x_max = if max_cost > 0.0 { max_cost * 1.3 } else { 1e-6 };
    let mut chart = ChartBuilder::on(area)
        .caption("Pass rate vs cost", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d(0f64..x_max, 0f64..105f64)?;
    chart
        .configure_mesh()
        .x_desc("mean cost per case (USD)")
        .y_desc("pass rate (%)")
        .x_labels(5)
        .y_label_formatter(&|v| format!("{v:.0}"))
        .x_label_formatter(&|v| usd(*v))
        .light_line_style(WHITE)
        .label_style(("sans-serif", 13))
        .draw()?;
    for (x, y, i) in points {
        let color = COLORS[i % COLORS.len()];
        let name = r.candidates[i].deployment.clone();
        chart.draw_series(std::iter::once(
            EmptyElement::at((x, y))
                + Circle::new((0, 0), 7, color.filled())
                + Text::new(name, (10, -6), ("sans-serif", 15).into_font().color(&color)),
        ))?;
    }
    Ok(())
}

fn latency_cdf(r: &Report, area: &Area) -> DrawResult {
    let max_ms = r.candidates.iter().flat_map(|c| c.total_samples.iter().chain(&c.ttft_samples)).copied().fold(0.0, f64::max);
    let x_max = if max_ms > 0.0 { max_ms * 1.05 } else { 1.0 };
    let mut chart = ChartBuilder::on(area)
        .caption("Latency distribution", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d(0f64..x_max, 0f64..100f64)?;
    chart
        .configure_mesh()
        .x_desc("latency (ms); thick: total, thin: first token")
        .y_desc("answers within (%)")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .light_line_style(WHITE)
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style(("sans-serif", 13))
        .draw()?;
    for (i, c) in r.candidates.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        if !c.ttft_samples.is_empty() {
            chart.draw_series(LineSeries::new(cdf(&c.ttft_samples), color.stroke_width(1)))?;
        }
        if c.total_samples.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(cdf(&c.total_samples), color.stroke_width(3)))?
            .label(c.deployment.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// A step function through the sorted samples, rising from 0% at the fastest one.
fn cdf(samples: &[f64]) -> Vec<(f64, f64)> {
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len() as f64;
    let mut pts = Vec::with_capacity(v.len() * 2);
    for (i, x) in v.iter().enumerate() {
        pts.push((*x, i as f64 / n * 100.0));
        pts.push((*x, (i + 1) as f64 / n * 100.0));
    }
    pts
}
