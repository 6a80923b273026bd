//! `sluice bench plot`: latency percentile spectra and throughput over time
//! of one or several result files, as SVG and PNG.
//!
//! Owns: drawing. The latency plot is HdrHistogram's percentile spectrum:
//! x is the percentile on a log scale of 1/(1-p) (50%, 90%, 99%, ...), y
//! the latency in milliseconds (log scale); one line per result and side.
//! The throughput plot is MB/s per counted second. Each is written as SVG
//! and as PNG; text is laid out with DejaVu Sans, which must be installed.

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use plotters::coord::{CoordTranslate, Shift};
use plotters::prelude::*;

use crate::stats::BenchResult;

const SIZE: (u32, u32) = (960, 600);

fn palette(i: usize) -> RGBColor {
    const COLORS: [RGBColor; 6] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
    ];
    COLORS[i % COLORS.len()]
}

fn percentile_label(x: f64) -> String {
    // x = 1/(1-p)
    let p = 100.0 * (1.0 - 1.0 / x);
    let text = format!("{p:.4}");
    format!("{}%", text.trim_end_matches('0').trim_end_matches('.'))
}

/// Draws each named series as a line, with a legend at `legend`.
fn draw_lines<'a, DB, CT>(
    chart: &mut ChartContext<'a, DB, CT>,
    series: &[(String, Vec<(f64, f64)>)],
    legend: SeriesLabelPosition,
) -> anyhow::Result<()>
where
    DB: DrawingBackend + 'a,
    CT: CoordTranslate<From = (f64, f64)>,
{
    for (i, (name, points)) in series.iter().enumerate() {
        let color = palette(i);
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| anyhow!("drawing: {e}"))?
            .label(name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(legend)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow!("drawing: {e}"))?;
    Ok(())
}

type Series = Vec<(String, Vec<(f64, f64)>)>;

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing: {e}")
}

/// The latency spectra of every result and side: x = 1/(1-p), y = ms.
fn latency_series(results: &[BenchResult]) -> Series {
    let mut series = Series::new();
    for r in results {
        for (side, s) in [("produce", &r.produce), ("e2e", &r.consume)] {
            let Some(s) = s else { continue };
            let points: Vec<(f64, f64)> = s
                .spectrum
                .iter()
                .filter(|(q, _)| *q < 1.0)
                .map(|(q, us)| (1.0 / (1.0 - q), (*us as f64 / 1000.0).max(0.001)))
                .collect();
            if !points.is_empty() {
                series.push((format!("{} {side}", r.label), points));
            }
        }
    }
    series
}

/// MB/s per counted second of every result and side.
fn throughput_series(results: &[BenchResult]) -> Series {
    let mut series = Series::new();
    for r in results {
        for (side, s) in [("produce", &r.produce), ("consume", &r.consume)] {
            let Some(s) = s else { continue };
            let points = s
                .per_second
                .iter()
                .enumerate()
                .map(|(t, sec)| (t as f64, sec.mb))
                .collect();
            series.push((format!("{} {side}", r.label), points));
        }
    }
    series
}

fn draw_latency<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    series: &Series,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(err)?;
    let x_max = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(x, _)| *x))
        .fold(10.0f64, f64::max);
    let (y_min, y_max) = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, y)| *y))
        .fold((f64::MAX, 0.0f64), |(lo, hi), y| (lo.min(y), hi.max(y)));
    let (y_min, y_max) = if y_max > 0.0 {
        (y_min / 1.5, y_max * 1.5)
    } else {
        (0.01, 10.0)
    };
    let mut chart = ChartBuilder::on(&root)
        .caption("latency by percentile", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (1.0f64..x_max * 1.2).log_scale(),
            (y_min..y_max).log_scale(),
        )
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_label_formatter(&|x| percentile_label(*x))
        .draw()
        .map_err(err)?;
    draw_lines(&mut chart, series, SeriesLabelPosition::UpperLeft)?;
    root.present().map_err(err)
}

fn draw_throughput<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    series: &Series,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(err)?;
    let x_max = series
        .iter()
        .map(|(_, p)| p.len())
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let y_max = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, y)| *y))
        .fold(1.0f64, f64::max);
    let mut chart = ChartBuilder::on(&root)
        .caption("throughput over time", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max * 1.15)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("second of the counted window")
        .y_desc("MB/s")
        .draw()
        .map_err(err)?;
    draw_lines(&mut chart, series, SeriesLabelPosition::LowerRight)?;
    root.present().map_err(err)
}

/// Where the font text is laid out with may be. The first that exists is
/// used.
const PNG_FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// Registers the font once; false when none is installed.
fn font() -> bool {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *REGISTERED.get_or_init(|| {
        let Some(bytes) = PNG_FONTS.iter().find_map(|p| std::fs::read(p).ok()) else {
            return false;
        };
        // plotters keeps fonts for the life of the process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
    })
}

/// Writes `latency.svg`, `throughput.svg`, `latency.png` and
/// `throughput.png` into `out_dir`; returns their paths. Text is laid out
/// with DejaVu Sans (Debian's fonts-dejavu-core), for both formats.
pub fn plot(results: &[BenchResult], out_dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if !font() {
        anyhow::bail!(
            "sluice bench plot lays out text with DejaVu Sans: install it (Debian: fonts-dejavu-core); looked in {PNG_FONTS:?}"
        );
    }
    std::fs::create_dir_all(out_dir)?;
    let charts = [
        (Chart::Latency, latency_series(results)),
        (Chart::Throughput, throughput_series(results)),
    ];
    let mut written = Vec::new();
    for (chart, series) in &charts {
        let svg = out_dir.join(format!("{}.svg", chart.name()));
        chart.draw(SVGBackend::new(&svg, SIZE).into_drawing_area(), series)?;
        let png = out_dir.join(format!("{}.png", chart.name()));
        chart.draw(BitMapBackend::new(&png, SIZE).into_drawing_area(), series)?;
        written.extend([svg, png]);
    }
    Ok(written)
}

/// The two plots, each drawn on either backend.
#[derive(Clone, Copy)]
enum Chart {
    Latency,
    Throughput,
}

impl Chart {
    fn name(self) -> &'static str {
        match self {
            Chart::Latency => "latency",
            Chart::Throughput => "throughput",
        }
    }

    fn draw<DB: DrawingBackend>(
        self,
        root: DrawingArea<DB, Shift>,
        series: &Series,
    ) -> anyhow::Result<()>
    where
        DB::ErrorType: 'static,
    {
        match self {
            Chart::Latency => draw_latency(root, series),
            Chart::Throughput => draw_throughput(root, series),
        }
    }
}
