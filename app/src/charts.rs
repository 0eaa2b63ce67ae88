//! Charts drawn on the server as SVG: readable without JavaScript, printable, and with
//! a `<title>` per bar so a pointer (or a screen reader) gets the exact figures.

use leptos::prelude::*;
use portcullis_domain::time::format_date;

/// One series of a stacked bar chart: its legend label and CSS class (colour).
#[derive(Clone, Copy)]
pub struct Series {
    pub label: &'static str,
    pub class: &'static str,
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 200.0;
const LEFT: f64 = 44.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 10.0;

/// The smallest of 1, 2, 5 × 10ⁿ at least `max`, so the axis reads in round numbers.
fn nice_ceiling(max: i64) -> i64 {
    let mut step = 1;
    loop {
        for m in [1, 2, 5] {
            if m * step >= max {
                return m * step;
            }
        }
        step *= 10;
    }
}

/// Bars per day, each stacked from its series' values (`values[day][series]`).
#[component]
pub fn StackedBars(
    /// What the chart shows, for screen readers and the figure caption.
    caption: String,
    days: Vec<i64>,
    values: Vec<Vec<i64>>,
    series: Vec<Series>,
    #[prop(optional)] test_id: &'static str,
) -> impl IntoView {
    let totals: Vec<i64> = values.iter().map(|v| v.iter().sum()).collect();
    let top = nice_ceiling(totals.iter().copied().max().unwrap_or(0).max(1));
    let plot_h = HEIGHT - BOTTOM - TOP;
    let slot = (WIDTH - LEFT) / days.len().max(1) as f64;
    let bar_w = (slot * 0.72).max(1.0);
    let y = move |v: i64| TOP + plot_h - plot_h * v as f64 / top as f64;
    let sums: Vec<i64> =
        (0..series.len()).map(|s| values.iter().map(|v| v.get(s).copied().unwrap_or(0)).sum()).collect();
    let label = format!(
        "{caption}: {}",
        series.iter().zip(&sums).map(|(s, n)| format!("{n} {}", s.label)).collect::<Vec<_>>().join(", ")
    );
    // The middle line only where it is a whole number (top is 1, 2 or 5 × 10ⁿ).
    let mid = (top > 1 && top % 2 == 0).then_some(top / 2);
    let grid = [Some(0), mid, Some(top)]
        .into_iter()
        .flatten()
        .map(|v| {
            let yy = y(v);
            view! {
                <line class="chart-grid" x1=LEFT x2=WIDTH y1=yy y2=yy/>
                <text class="chart-axis" x=LEFT - 6.0 y=yy + 4.0 text-anchor="end">{v.to_string()}</text>
            }
        })
        .collect_view();
    let last = days.len().saturating_sub(1);
    let bars = days.iter().enumerate().map(|(i, day)| {
        let x = LEFT + slot * i as f64 + (slot - bar_w) / 2.0;
        let mut base = 0i64;
        let tip = format!(
            "{}: {}",
            format_date(*day),
            series.iter().zip(&values[i]).map(|(s, n)| format!("{n} {}", s.label)).collect::<Vec<_>>().join(", ")
        );
        let segments = series.iter().zip(&values[i]).filter(|(_, n)| **n > 0).map(|(s, n)| {
            let (y0, y1) = (y(base), y(base + n));
            base += n;
            view! { <rect class=s.class x=x y=y1 width=bar_w height=(y0 - y1).max(0.5)><title>{tip.clone()}</title></rect> }
        }).collect_view();
        // Weekly ticks counted back from the last day, so today is always labelled.
        let tick = (last - i).is_multiple_of(7).then(|| {
            let text = format_date(*day)[5..].to_owned();
            // The last label ends at its bar, so it is not cut at the chart's edge.
            let (tx, anchor) = if i == last { (x + bar_w, "end") } else { (x + bar_w / 2.0, "middle") };
            view! { <text class="chart-axis" x=tx y=HEIGHT - 6.0 text-anchor=anchor>{text}</text> }
        });
        view! { <g>{segments}{tick}</g> }
    }).collect_view();
    let aria = label.clone();
    view! {
        <figure class="chart" data-testid=test_id>
            <svg viewBox=format!("0 0 {WIDTH} {HEIGHT}") role="img" aria-label=aria preserveAspectRatio="xMidYMid meet">
                <title>{label}</title>
                {grid}
                {bars}
            </svg>
            <figcaption class="chart-legend">
                <span class="muted">{caption}</span>
                {series.into_iter().zip(sums).map(|(s, n)| view! {
                    <span class="legend-item"><span class=format!("legend-swatch {}", s.class)></span>{format!("{} ({n})", s.label)}</span>
                }).collect_view()}
            </figcaption>
        </figure>
    }
}

#[cfg(test)]
mod tests {
    use super::nice_ceiling;

    #[test]
    fn axis_tops_are_round() {
        assert_eq!([1, 2, 3, 7, 11, 180, 501].map(nice_ceiling), [1, 2, 5, 10, 20, 200, 1000]);
    }
}
