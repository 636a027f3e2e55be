//! `--chart DIR`: a run as two SVG pictures. [`FIGURES_SVG`] shows each figure as bars for the
//! runtime, CPython and the floor, one small chart per figure, each on its own scale;
//! [`SIZES_SVG`] shows the throughput of the queue, the pipe and the pool against the payload's
//! size.

use std::ops::Range;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::Result;
use crate::catalogue::{Better, FIGURES, SIZES, Size, Spec};
use crate::measure::Figures;

/// The bars, written into the chart's folder.
pub const FIGURES_SVG: &str = "results.svg";
/// The curves, written beside them.
pub const SIZES_SVG: &str = "sizes.svg";

const RUST: RGBColor = RGBColor(206, 92, 32);
const PYTHON: RGBColor = RGBColor(55, 110, 165);
const FLOOR: RGBColor = RGBColor(150, 150, 150);
const LEGEND: [(&str, RGBColor); 3] = [
    ("Rust", RUST),
    ("CPython", PYTHON),
    ("floor: bare system calls", FLOOR),
];
const FONT: &str = "sans-serif";
/// The height of the title, the caption and the legend above the charts.
const HEADER: u32 = 90;

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Writes both pictures into `folder`, under `caption` (where and when the run was taken), and
/// returns their paths. Figures missing from `python` have no CPython bar or curve.
///
/// # Errors
///
/// When a file cannot be written.
pub fn write(
    folder: &Path,
    caption: &str,
    rust: &Figures,
    python: &Figures,
) -> Result<[PathBuf; 2]> {
    let (figures, sizes) = (folder.join(FIGURES_SVG), folder.join(SIZES_SVG));
    bars(&figures, caption, rust, python)?;
    curves(&sizes, caption, rust, python)?;
    Ok([figures, sizes])
}

/// The figures the bars show: every one the runtime measured but the floors themselves, the
/// load average and the curves' points.
fn barred(rust: &Figures) -> Vec<&'static Spec> {
    let in_curves = |name| {
        SIZES
            .iter()
            .any(|size| [size.queue, size.pipe, size.pool].contains(&name))
    };
    FIGURES
        .iter()
        .filter(|spec| {
            spec.better != Better::Neither
                && !spec.name.starts_with("raw_")
                && !in_curves(spec.name)
                && rust.get(spec.name).is_some()
        })
        .collect()
}

fn bars(path: &Path, caption: &str, rust: &Figures, python: &Figures) -> Result<()> {
    const COLUMNS: usize = 4;
    let specs = barred(rust);
    let rows = specs.len().div_ceil(COLUMNS).max(1);
    let size = (COLUMNS as u32 * 330, HEADER + rows as u32 * 240);
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE)?;
    let (header, body) = root.split_vertically(HEADER);
    heading(
        &header,
        "The runtime, CPython's multiprocessing and the floor, figure by figure",
        caption,
    )?;
    for (area, spec) in body.split_evenly((rows, COLUMNS)).iter().zip(specs) {
        bar_panel(area, spec, rust, python)?;
    }
    root.present()?;
    Ok(())
}

/// One figure: a bar for each of the runtime, CPython and the floor that has a value.
fn bar_panel(area: &Area<'_>, spec: &Spec, rust: &Figures, python: &Figures) -> Result<()> {
    let values = [
        rust.get(spec.name),
        python.get(spec.name),
        spec.floor.and_then(|floor| rust.get(floor)),
    ];
    let bars: Vec<(f64, RGBColor)> = values
        .into_iter()
        .zip(LEGEND)
        .filter_map(|(value, (_, color))| Some((value?, color)))
        .collect();
    let top = bars.iter().map(|(value, _)| *value).fold(0.0, f64::max) * 1.2;
    let direction = match spec.better {
        Better::Lower => "lower is better",
        _ => "higher is better",
    };
    let mut chart = ChartBuilder::on(area)
        .caption(spec.name, (FONT, 14))
        .margin(10)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..bars.len() as f64, 0.0..top.max(f64::MIN_POSITIVE))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .disable_x_axis()
        .light_line_style(WHITE)
        .y_labels(5)
        .y_label_formatter(&|value| short(*value))
        .y_desc(format!("{}, {direction}", unit(spec)))
        .draw()?;
    chart.draw_series(bars.iter().enumerate().map(|(i, (value, color))| {
        let x = i as f64;
        Rectangle::new([(x + 0.15, 0.0), (x + 0.85, *value)], color.filled())
    }))?;
    let label = TextStyle::from((FONT, 12).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom));
    chart.draw_series(bars.iter().enumerate().map(|(i, (value, _))| {
        Text::new(short(*value), (i as f64 + 0.5, *value), label.clone())
    }))?;
    Ok(())
}

/// Which of a payload size's figures a curve follows.
type Pick = fn(&Size) -> &'static str;

/// The panels of the curves: a title, and the runtime's figure that CPython measures too.
const KINDS: [(&str, Pick); 3] = [
    ("Queue: put and get", |size| size.queue),
    ("Pipe: send_bytes and recv_bytes", |size| size.pipe),
    ("Pool(2).map of the identity", |size| size.pool),
];

fn curves(path: &Path, caption: &str, rust: &Figures, python: &Figures) -> Result<()> {
    let every = SIZES.iter().flat_map(|size| {
        [size.floor, size.queue, size.pipe, size.pool]
            .into_iter()
            .flat_map(|name| [rust.get(name), python.get(name)])
    });
    let (low, high) = every
        .flatten()
        .filter(|value| *value > 0.0)
        .fold((f64::MAX, f64::MIN_POSITIVE), |(low, high), value| {
            (low.min(value), high.max(value))
        });
    let range = (low.min(high) / 2.0)..(high * 2.0);
    let root = SVGBackend::new(path, (1260, HEADER + 400)).into_drawing_area();
    root.fill(&WHITE)?;
    let (header, body) = root.split_vertically(HEADER);
    heading(
        &header,
        "Throughput against the payload's size: a Vec<u8> (bytes in CPython) there and back",
        caption,
    )?;
    for (area, (title, pick)) in body.split_evenly((1, KINDS.len())).iter().zip(KINDS) {
        curve_panel(
            area,
            title,
            range.clone(),
            [(rust, pick), (python, pick), (rust, |size| size.floor)],
        )?;
    }
    root.present()?;
    Ok(())
}

/// One panel of curves on a shared scale of MiB/s: the runtime's, CPython's and the floor's, in
/// the colours of the legend.
fn curve_panel(
    area: &Area<'_>,
    title: &str,
    range: Range<f64>,
    curves: [(&Figures, Pick); 3],
) -> Result<()> {
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 15))
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.3..SIZES.len() as f64 - 0.7, range.log_scale())?;
    chart
        .configure_mesh()
        .x_labels(SIZES.len())
        .x_label_formatter(&|x| {
            let i = x.round();
            match SIZES.get(i as usize) {
                Some(size) if (x - i).abs() < 1e-6 => size.label.to_owned(),
                _ => String::new(),
            }
        })
        .x_desc("payload")
        .y_label_formatter(&|value| short(*value))
        .y_desc("MiB/s (log scale)")
        .draw()?;
    for ((figures, pick), (_, color)) in curves.into_iter().zip(LEGEND) {
        let points: Vec<(f64, f64)> = SIZES
            .iter()
            .enumerate()
            .filter_map(|(i, size)| Some((i as f64, figures.get(pick(size))?)))
            .collect();
        chart.draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?;
        chart.draw_series(
            points
                .into_iter()
                .map(|point| Circle::new(point, 4, color.filled())),
        )?;
    }
    Ok(())
}

/// The title, the caption below it, and the legend of colours.
fn heading(area: &Area<'_>, title: &str, caption: &str) -> Result<()> {
    area.draw(&Text::new(title, (16, 12), (FONT, 20).into_font()))?;
    area.draw(&Text::new(caption, (16, 40), (FONT, 13).into_font()))?;
    let mut x = 16;
    for (label, color) in LEGEND {
        area.draw(&Rectangle::new([(x, 64), (x + 14, 78)], color.filled()))?;
        area.draw(&Text::new(label, (x + 20, 64), (FONT, 13).into_font()))?;
        x += 40 + 8 * label.len() as i32;
    }
    Ok(())
}

/// The unit as the axis names it.
fn unit(spec: &Spec) -> &'static str {
    match spec.unit {
        "x" => "times",
        unit => unit,
    }
}

/// A value in three significant figures, with k, M or G for thousands, millions, billions.
fn short(value: f64) -> String {
    let (scaled, suffix) = match value.abs() {
        v if v >= 1e9 => (value / 1e9, "G"),
        v if v >= 1e6 => (value / 1e6, "M"),
        v if v >= 1e4 => (value / 1e3, "k"),
        _ => (value, ""),
    };
    let decimals = match scaled.abs() {
        v if v >= 100.0 || v == 0.0 => 0,
        v if v >= 10.0 => 1,
        _ => 2,
    };
    format!("{scaled:.decimals$}{suffix}")
}
