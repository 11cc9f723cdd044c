//! SVG plots of the results (plotters' SVG backend: text is written as SVG `<text>`, so no
//! font files are needed).

use crate::cli::{Event, Load, Mode, Order, Senders};
use crate::results::{latest_view_change, CellSummary, RatePoint, ViewChangeRow};
use crate::BoxError;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// One line (or set of points) of a chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Its legend.
    pub name: String,
    /// Its points, in x order.
    pub points: Vec<(f64, f64)>,
}

/// A chart to draw.
#[derive(Clone, Debug)]
pub struct Chart<'a> {
    /// Title.
    pub title: &'a str,
    /// X axis label.
    pub x_desc: &'a str,
    /// Y axis label.
    pub y_desc: &'a str,
    /// Names of x = 0, 1, 2, ... when the x axis is categorical.
    pub x_categories: Option<Vec<String>>,
    /// Points only, no lines.
    pub scatter: bool,
    /// A logarithmic y axis (points at or below zero are left out).
    pub log_y: bool,
}

fn color(i: usize) -> RGBColor {
    const COLORS: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
    ];
    COLORS[i % COLORS.len()]
}

/// Draws `series` into the SVG file `path`. Series without points are left out; nothing is
/// drawn (and `false` returned) when none has any.
pub fn draw(path: &Path, chart: &Chart<'_>, series: &[Series]) -> Result<bool, BoxError> {
    let series: Vec<&Series> = series.iter().filter(|s| !s.points.is_empty()).collect();
    if series.is_empty() {
        return Ok(false);
    }
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let (mut x_min, mut x_max) = xs
        .clone()
        .fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
    // Whole-number x (group sizes) gets one label per whole number, none in between.
    let whole = chart.x_categories.is_none()
        && xs.clone().all(|x| x.fract() == 0.0)
        && x_max - x_min <= 20.0;
    if let Some(categories) = &chart.x_categories {
        x_min = -0.5;
        x_max = categories.len() as f64 - 0.5;
    } else if whole {
        x_min -= 0.5;
        x_max += 0.5;
    } else {
        let pad = ((x_max - x_min) * 0.05).max(0.5);
        x_min -= pad;
        x_max += pad;
    }
    let ys = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .filter(|y| !chart.log_y || *y > 0.0);
    let y_max = ys.clone().fold(0.0f64, f64::max);
    let y_min_positive = ys.fold(f64::MAX, f64::min);
    // Headroom for the legend, which grows with the series.
    let lines = series.len() as f64;
    let y_max = if y_max <= 0.0 {
        1.0
    } else if chart.log_y {
        y_max * 10f64.powf(0.3 + 0.1 * lines)
    } else {
        y_max * (1.15 + 0.05 * lines)
    };

    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let categories = chart.x_categories.clone();
    let x_format = move |x: &f64| match &categories {
        Some(names) => {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len() {
                names[i as usize].clone()
            } else {
                String::new()
            }
        }
        None if whole => {
            if (x - x.round()).abs() < 1e-6 {
                format!("{x:.0}")
            } else {
                String::new()
            }
        }
        None => format!("{x:.0}"),
    };
    let y_format = |y: &f64| {
        if *y == 0.0 {
            "0".to_string()
        } else if *y >= 10_000.0 {
            format!("{:.0}k", y / 1000.0)
        } else if *y >= 10.0 || y.fract() == 0.0 {
            format!("{y:.0}")
        } else {
            format!("{y:.2}")
        }
    };
    // The same drawing over a linear or a logarithmic y axis (different coordinate types).
    macro_rules! render {
        ($y_range:expr) => {{
            let mut ctx = ChartBuilder::on(&root)
                .caption(chart.title, ("sans-serif", 22))
                .margin(16)
                .x_label_area_size(48)
                .y_label_area_size(80)
                .build_cartesian_2d(x_min..x_max, $y_range)?;
            let mut mesh = ctx.configure_mesh();
            mesh.x_desc(chart.x_desc)
                .y_desc(chart.y_desc)
                .light_line_style(RGBColor(245, 245, 245))
                .x_label_formatter(&x_format)
                .y_label_formatter(&y_format)
                .label_style(("sans-serif", 14));
            if let Some(names) = &chart.x_categories {
                // One label per category (labels fall on whole numbers).
                mesh.x_labels(names.len() * 2 + 1);
            } else if whole {
                mesh.x_labels(((x_max - x_min) as usize + 1) * 2);
            }
            mesh.draw()?;
            for (i, s) in series.iter().enumerate() {
                let c = color(i);
                let points: Vec<(f64, f64)> = s
                    .points
                    .iter()
                    .copied()
                    .filter(|p| !chart.log_y || p.1 > 0.0)
                    .collect();
                if chart.scatter {
                    ctx.draw_series(points.iter().map(|p| Circle::new(*p, 5, c.filled())))?
                        .label(s.name.clone())
                        .legend(move |(x, y)| Circle::new((x + 10, y), 5, c.filled()));
                } else {
                    ctx.draw_series(LineSeries::new(points.clone(), c.stroke_width(2)))?
                        .label(s.name.clone())
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                        });
                    ctx.draw_series(points.iter().map(|p| Circle::new(*p, 4, c.filled())))?;
                }
            }
            ctx.configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font(("sans-serif", 14))
                .position(SeriesLabelPosition::UpperRight)
                .draw()?;
        }};
    }
    if chart.log_y {
        let y_min = if y_min_positive < f64::MAX {
            (y_min_positive / 2.0).max(f64::MIN_POSITIVE)
        } else {
            0.1
        };
        render!((y_min..y_max).log_scale());
    } else {
        render!(0.0..y_max);
    }
    root.present()?;
    Ok(true)
}

fn find(
    summaries: &[CellSummary],
    mode: Mode,
    senders: Senders,
    order: Order,
    members: usize,
    size: usize,
) -> Option<&CellSummary> {
    summaries.iter().find(|s| {
        s.cell.mode == mode
            && s.cell.senders == senders
            && s.cell.order == order
            && s.cell.members == members
            && s.cell.size == size
    })
}

/// Draws `multicast-rate.svg`: for each ordering (and group, size, senders) in `points`,
/// the worst member's own-delivery p50 and p99 (ms, log scale) against the deliveries per
/// second per member. Returns its path if anything was drawn.
pub fn rate_plot(dir: &Path, points: &[RatePoint]) -> Result<Option<PathBuf>, BoxError> {
    let mut series: Vec<Series> = Vec::new();
    let mut keys: Vec<_> = points
        .iter()
        .map(|p| (p.cell.order, p.cell.members, p.cell.size, p.cell.senders))
        .collect();
    keys.dedup();
    for key in keys {
        let of_key: Vec<&RatePoint> = points
            .iter()
            .filter(|p| (p.cell.order, p.cell.members, p.cell.size, p.cell.senders) == key)
            .collect();
        let (order, members, size, _) = key;
        for (quantile, value) in [
            (
                "p50",
                (|p: &RatePoint| p.own_p50_us) as fn(&RatePoint) -> Option<u64>,
            ),
            ("p99", |p: &RatePoint| p.own_p99_us),
        ] {
            let mut pts: Vec<(f64, f64)> = of_key
                .iter()
                .filter_map(|p| value(p).map(|v| (p.deliv_msgs_s, v as f64 / 1000.0)))
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            series.push(Series {
                name: format!("{order} {quantile} ({members} members, {size} B)"),
                points: pts,
            });
        }
    }
    let path = dir.join("multicast-rate.svg");
    let drawn = draw(
        &path,
        &Chart {
            title: "Open loop, all members sending: own-delivery latency against load",
            x_desc: "delivered msgs/s per member",
            y_desc: "own-delivery latency from the intended send (ms)",
            x_categories: None,
            scatter: false,
            log_y: true,
        },
        &series,
    )?;
    Ok(drawn.then_some(path))
}

const SIZES: [usize; 3] = [100, 1024, 8192];
const GROUPS: [usize; 3] = [3, 5, 7];

/// Draws the multicast plots that the summaries have data for; returns their paths.
///
/// - `multicast-throughput-vs-members.svg`: flood, all sending, 1 KiB, per ordering;
/// - `multicast-throughput-vs-size.svg` (messages/s) and `multicast-mbps-vs-size.svg`:
///   flood, all sending, 3 members, per ordering;
/// - `multicast-throughput-by-ordering.svg`: flood, all sending, 1 KiB, per group size;
/// - `multicast-latency-vs-members.svg`: ping, all sending, 1 KiB, p50 per ordering;
/// - `multicast-recv-latency-vs-members.svg`: ping, all sending, 1 KiB, p50 from a
///   multicast to its delivery at the other members, per ordering;
/// - `multicast-latency-by-ordering.svg`: ping, 3 members, 1 KiB, own p50 and p99 and the
///   others' p50, for one and all senders;
/// - `multicast-latency-vs-size.svg`: ping, all sending, 3 members, p50 per ordering.
pub fn multicast_plots(dir: &Path, summaries: &[CellSummary]) -> Result<Vec<PathBuf>, BoxError> {
    let mut drawn = Vec::new();
    let mut plot = |name: &str, chart: Chart<'_>, series: Vec<Series>| -> Result<(), BoxError> {
        let path = dir.join(name);
        if draw(&path, &chart, &series)? {
            drawn.push(path);
        }
        Ok(())
    };
    let per_order = |f: &dyn Fn(Order) -> Vec<(f64, f64)>| -> Vec<Series> {
        Order::ALL
            .iter()
            .map(|o| Series {
                name: o.to_string(),
                points: f(*o),
            })
            .collect()
    };
    let sizes: Vec<String> = SIZES.iter().map(|s| s.to_string()).collect();
    let orders: Vec<String> = Order::ALL.iter().map(|o| o.to_string()).collect();

    plot(
        "multicast-throughput-vs-members.svg",
        Chart {
            title: "Flood, all members sending, 1 KiB: deliveries/s per member",
            x_desc: "group size (members)",
            y_desc: "delivered msgs/s per member",
            x_categories: None,
            scatter: false,
            log_y: false,
        },
        per_order(&|o| {
            GROUPS
                .iter()
                .filter_map(|m| find(summaries, Mode::Flood, Senders::All, o, *m, 1024))
                .map(|s| (s.cell.members as f64, s.rate_mean))
                .collect()
        }),
    )?;
    let by_size = |o: Order, value: fn(&CellSummary) -> Option<f64>, mode: Mode| {
        SIZES
            .iter()
            .enumerate()
            .filter_map(|(i, size)| {
                find(summaries, mode, Senders::All, o, 3, *size)
                    .and_then(|s| value(s).map(|v| (i as f64, v)))
            })
            .collect()
    };
    plot(
        "multicast-throughput-vs-size.svg",
        Chart {
            title: "Flood, 3 members all sending: deliveries/s per member",
            x_desc: "message size (bytes)",
            y_desc: "delivered msgs/s per member",
            x_categories: Some(sizes.clone()),
            scatter: false,
            log_y: false,
        },
        per_order(&|o| by_size(o, |s| Some(s.rate_mean), Mode::Flood)),
    )?;
    plot(
        "multicast-mbps-vs-size.svg",
        Chart {
            title: "Flood, 3 members all sending: payload MB/s delivered per member",
            x_desc: "message size (bytes)",
            y_desc: "delivered MB/s per member",
            x_categories: Some(sizes.clone()),
            scatter: false,
            log_y: false,
        },
        per_order(&|o| by_size(o, |s| Some(s.mb_mean), Mode::Flood)),
    )?;
    plot(
        "multicast-throughput-by-ordering.svg",
        Chart {
            title: "Flood, all sending, 1 KiB: the cost of each ordering",
            x_desc: "ordering",
            y_desc: "delivered msgs/s per member",
            x_categories: Some(orders.clone()),
            scatter: false,
            log_y: false,
        },
        GROUPS
            .iter()
            .map(|m| Series {
                name: format!("{m} members"),
                points: Order::ALL
                    .iter()
                    .enumerate()
                    .filter_map(|(i, o)| {
                        find(summaries, Mode::Flood, Senders::All, *o, *m, 1024)
                            .map(|s| (i as f64, s.rate_mean))
                    })
                    .collect(),
            })
            .collect(),
    )?;
    plot(
        "multicast-latency-vs-members.svg",
        Chart {
            title: "One message in flight per sender, all sending, 1 KiB: own-delivery p50",
            x_desc: "group size (members)",
            y_desc: "p50 latency (µs)",
            x_categories: None,
            scatter: false,
            log_y: true,
        },
        per_order(&|o| {
            GROUPS
                .iter()
                .filter_map(|m| find(summaries, Mode::Ping, Senders::All, o, *m, 1024))
                .filter_map(|s| s.p50_us.map(|p| (s.cell.members as f64, p)))
                .collect()
        }),
    )?;
    plot(
        "multicast-recv-latency-vs-members.svg",
        Chart {
            title: "One message in flight per sender, all sending, 1 KiB: p50 from a multicast to its delivery at the others",
            x_desc: "group size (members)",
            y_desc: "p50 latency (µs)",
            x_categories: None,
            scatter: false,
            log_y: true,
        },
        per_order(&|o| {
            GROUPS
                .iter()
                .filter_map(|m| find(summaries, Mode::Ping, Senders::All, o, *m, 1024))
                .filter_map(|s| s.recv_p50_us.map(|p| (s.cell.members as f64, p)))
                .collect()
        }),
    )?;
    let mut latency_series = Vec::new();
    for senders in [Senders::Count(1), Senders::All] {
        for (label, pick) in [
            (
                "own p50",
                (|s: &CellSummary| s.p50_us) as fn(&CellSummary) -> Option<f64>,
            ),
            ("own p99", |s: &CellSummary| s.p99_us),
            ("others' p50", |s: &CellSummary| s.recv_p50_us),
        ] {
            latency_series.push(Series {
                name: format!("{label}, {} sending", senders),
                points: Order::ALL
                    .iter()
                    .enumerate()
                    .filter_map(|(i, o)| {
                        find(summaries, Mode::Ping, senders, *o, 3, 1024)
                            .and_then(pick)
                            .map(|v| (i as f64, v))
                    })
                    .collect(),
            });
        }
    }
    plot(
        "multicast-latency-by-ordering.svg",
        Chart {
            title: "One message in flight, 3 members, 1 KiB: latency to own and others' delivery",
            x_desc: "ordering",
            y_desc: "latency (µs)",
            x_categories: Some(orders),
            scatter: false,
            log_y: true,
        },
        latency_series,
    )?;
    plot(
        "multicast-latency-vs-size.svg",
        Chart {
            title: "One message in flight, 3 members all sending: own-delivery p50",
            x_desc: "message size (bytes)",
            y_desc: "p50 latency (µs)",
            x_categories: Some(sizes),
            scatter: false,
            log_y: true,
        },
        per_order(&|o| by_size(o, |s| s.p50_us, Mode::Ping)),
    )?;
    Ok(drawn)
}

/// Draws the view-change plots; returns their paths.
///
/// - `view-change-vs-members.svg`: time to the new view at every member against group size,
///   per event and load;
/// - `view-change-vs-unstable.svg`: the same time against the multicast entries held when
///   the change began, per event (every run);
/// - `failure-detection-vs-members.svg`: time to the first suspicion after a SIGKILL.
pub fn view_change_plots(dir: &Path, rows: &[ViewChangeRow]) -> Result<Vec<PathBuf>, BoxError> {
    let latest = latest_view_change(rows);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let mut drawn = Vec::new();
    let mut series = Vec::new();
    let mut detection = Vec::new();
    for load in [Load::None, Load::Flood] {
        for event in Event::ALL {
            let cells = latest
                .iter()
                .filter(|(c, _)| c.event == event && c.load == load);
            let mut points = Vec::new();
            let mut detect = Vec::new();
            for (cell, runs) in cells {
                let times: Vec<f64> = runs.iter().map(|r| r.result.view_ms_max).collect();
                points.push((cell.members as f64, mean(&times)));
                let d: Vec<f64> = runs.iter().filter_map(|r| r.result.detect_ms).collect();
                if !d.is_empty() {
                    detect.push((cell.members as f64, mean(&d)));
                }
            }
            let name = format!("{event}, load {load}");
            series.push(Series {
                name: name.clone(),
                points,
            });
            detection.push(Series {
                name,
                points: detect,
            });
        }
    }
    let path = dir.join("view-change-vs-members.svg");
    if draw(
        &path,
        &Chart {
            title: "Time from the event to the new view at every member",
            x_desc: "group size before the event (members)",
            y_desc: "ms",
            x_categories: None,
            scatter: false,
            log_y: false,
        },
        &series,
    )? {
        drawn.push(path);
    }
    let path = dir.join("failure-detection-vs-members.svg");
    if draw(
        &path,
        &Chart {
            title: "Time from SIGKILL to the first suspicion",
            x_desc: "group size before the kill (members)",
            y_desc: "ms",
            x_categories: None,
            scatter: false,
            log_y: false,
        },
        &detection,
    )? {
        drawn.push(path);
    }
    let unstable: Vec<Series> = Event::ALL
        .iter()
        .map(|event| Series {
            name: event.to_string(),
            points: latest
                .iter()
                .filter(|(c, _)| c.event == *event)
                .flat_map(|(_, runs)| runs.iter())
                .map(|r| (r.result.unstable as f64, r.result.view_ms_max))
                .collect(),
        })
        .collect();
    let path = dir.join("view-change-vs-unstable.svg");
    if draw(
        &path,
        &Chart {
            title: "Time to the new view at every member against unstable messages",
            x_desc: "multicast entries held when the change began",
            y_desc: "ms",
            x_categories: None,
            scatter: true,
            log_y: false,
        },
        &unstable,
    )? {
        drawn.push(path);
    }
    Ok(drawn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_is_an_svg_with_its_text() {
        let dir = std::env::temp_dir().join(format!("vsb-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.svg");
        let drawn = draw(
            &path,
            &Chart {
                title: "A title",
                x_desc: "x things",
                y_desc: "y things",
                x_categories: Some(vec!["fifo".into(), "total".into()]),
                scatter: false,
                log_y: false,
            },
            &[Series {
                name: "series one".into(),
                points: vec![(0.0, 10.0), (1.0, 20_000.0)],
            }],
        )
        .unwrap();
        assert!(drawn);
        let svg = std::fs::read_to_string(&path).unwrap();
        for text in ["<svg", "A title", "series one", "fifo", "total", "20k"] {
            assert!(svg.contains(text), "{text} missing");
        }
        assert!(!draw(
            &dir.join("empty.svg"),
            &Chart {
                title: "t",
                x_desc: "x",
                y_desc: "y",
                x_categories: None,
                scatter: true,
                log_y: false,
            },
            &[]
        )
        .unwrap());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
