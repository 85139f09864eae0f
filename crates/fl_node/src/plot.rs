//! PNG plots of a `mycelix-fl matrix` sweep: per aggregator and partition, final accuracy,
//! TPR and FPR against the Byzantine fraction, one line per attack.
//!
//! Text is drawn with the DejaVu Sans font compiled into the binary, so plots look the
//! same on a machine without any fonts installed.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::prelude::*;

/// One run of the sweep.
#[derive(Debug, Clone)]
pub struct Cell {
    /// Attack name.
    pub attack: String,
    /// Byzantine fraction.
    pub fraction: f64,
    /// Final test accuracy.
    pub accuracy: f64,
    /// TPR after warm-up.
    pub tpr: f64,
    /// FPR after warm-up.
    pub fpr: f64,
}

/// Why a plot could not be written.
#[derive(Debug, thiserror::Error)]
#[error("plotting {path}: {message}")]
pub struct PlotError {
    path: String,
    message: String,
}

static FONT: Once = Once::new();

fn register_font() {
    FONT.call_once(|| {
        // The bytes are a valid TrueType font shipped by the dejavu crate.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

/// Draws `title`'s three panels (accuracy with the clean run as a dashed line, TPR, FPR)
/// for `cells` into `dir/<file>.png`; returns the path.
pub fn matrix_png(
    dir: &Path,
    file: &str,
    title: &str,
    clean_accuracy: f64,
    cells: &[Cell],
) -> Result<PathBuf, PlotError> {
    register_font();
    let path = dir.join(format!("{file}.png"));
    let err = |e: &dyn std::fmt::Display| PlotError {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let mut attacks: Vec<&str> = Vec::new();
    for c in cells {
        if !attacks.contains(&c.attack.as_str()) {
            attacks.push(&c.attack);
        }
    }
    let max_fraction = cells.iter().map(|c| c.fraction).fold(0.5, f64::max);
    {
        let root = BitMapBackend::new(&path, (1500, 520)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let root = root
            .titled(title, ("sans-serif", 22))
            .map_err(|e| err(&e))?;
        let panels = root.split_evenly((1, 3));
        type Metric = fn(&Cell) -> f64;
        let metrics: [(&str, Metric); 3] = [
            ("final accuracy", |c| c.accuracy),
            ("TPR (attackers excluded)", |c| c.tpr),
            ("FPR (honest peers excluded)", |c| c.fpr),
        ];
        for (k, (panel, (name, metric))) in panels.iter().zip(metrics).enumerate() {
            let mut chart = ChartBuilder::on(panel)
                .caption(name, ("sans-serif", 18))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(40)
                .build_cartesian_2d(0.0..max_fraction, 0.0..1.0)
                .map_err(|e| err(&e))?;
            chart
                .configure_mesh()
                .x_desc("Byzantine fraction")
                .light_line_style(WHITE.mix(0.0))
                .draw()
                .map_err(|e| err(&e))?;
            if k == 0 {
                chart
                    .draw_series(DashedLineSeries::new(
                        [(0.0, clean_accuracy), (max_fraction, clean_accuracy)],
                        6,
                        4,
                        BLACK.stroke_width(1),
                    ))
                    .map_err(|e| err(&e))?
                    .label("clean run")
                    .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], BLACK));
            }
            for (i, attack) in attacks.iter().enumerate() {
                let color = Palette99::pick(i).to_rgba();
                let mut points: Vec<(f64, f64)> = cells
                    .iter()
                    .filter(|c| c.attack == *attack)
                    .map(|c| (c.fraction, metric(c)))
                    .collect();
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                let series = chart
                    .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                    .map_err(|e| err(&e))?;
                if k == 0 {
                    series
                        .label(*attack)
                        .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color));
                }
                chart
                    .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .map_err(|e| err(&e))?;
            }
            if k == 0 {
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::LowerLeft)
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK)
                    .label_font(("sans-serif", 12))
                    .draw()
                    .map_err(|e| err(&e))?;
            }
        }
        root.present().map_err(|e| err(&e))?;
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_png_with_every_panel() {
        let dir = tempfile::tempdir().unwrap();
        let cells: Vec<Cell> = ["sign_flip", "zero"]
            .iter()
            .flat_map(|a| {
                [0.1, 0.3].map(|f| Cell {
                    attack: a.to_string(),
                    fraction: f,
                    accuracy: 0.9 - f,
                    tpr: 1.0,
                    fpr: f / 10.0,
                })
            })
            .collect();
        let path = matrix_png(dir.path(), "m", "test", 0.9, &cells).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        assert!(bytes.len() > 10_000, "{} bytes", bytes.len());
    }
}
