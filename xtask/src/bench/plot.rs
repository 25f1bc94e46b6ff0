//! The scaling curves as a PNG: one panel per table dimension, ns per packet for every path
//! (and the floor) at the three sizes of that dimension, the other tables at their smallest.
//! Drawn on a plain RGB canvas with an 8x8 bitmap font (no font files, no system libraries).
use std::{fs::File, io::BufWriter, path::Path as FsPath};

use anyhow::{Context as _, Result};
use font8x8::UnicodeFonts as _;

use super::{
    Dimension, SMALLEST,
    testrun::{ConfigCost, Path},
};

const WIDTH: usize = 1200;
const HEIGHT: usize = 860;
const PANEL_W: usize = 600;
const PANEL_H: usize = 380;
const LEGEND_Y: usize = 2 * PANEL_H + 20;
const COLOURS: [[u8; 3]; 8] = [
    [31, 119, 180],
    [214, 39, 40],
    [44, 160, 44],
    [148, 103, 189],
    [255, 127, 14],
    [140, 86, 75],
    [23, 190, 207],
    [80, 80, 80],
];

struct Canvas {
    px: Vec<u8>,
}

impl Canvas {
    fn new() -> Self {
        Self {
            px: vec![255; WIDTH * HEIGHT * 3],
        }
    }

    fn set(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if (0..WIDTH as i64).contains(&x) && (0..HEIGHT as i64).contains(&y) {
            let i = (y as usize * WIDTH + x as usize) * 3;
            self.px[i..i + 3].copy_from_slice(&c);
        }
    }

    /// A line `thick` pixels wide (Bresenham, squares at each step).
    fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: [u8; 3], thick: i64) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        loop {
            for ox in 0..thick {
                for oy in 0..thick {
                    self.set(x + ox - thick / 2, y + oy - thick / 2, c);
                }
            }
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    fn text(&mut self, x: i64, y: i64, s: &str, c: [u8; 3]) {
        for (n, ch) in s.chars().enumerate() {
            let glyph = font8x8::BASIC_FONTS.get(ch).unwrap_or([0; 8]);
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) != 0 {
                        self.set(x + n as i64 * 8 + col, y + row as i64, c);
                    }
                }
            }
        }
    }

    fn save(&self, path: &FsPath) -> Result<()> {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut encoder = png::Encoder::new(BufWriter::new(file), WIDTH as u32, HEIGHT as u32);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&self.px)?;
        Ok(())
    }
}

/// One curve: a label and its value at each of the three sizes.
struct Series {
    label: &'static str,
    values: Vec<Option<f64>>,
}

/// The curves of `dimension`: configurations equal to the smallest but in that dimension.
fn series(configs: &[ConfigCost], dimension: Dimension) -> Vec<Series> {
    let at = |value: usize| {
        configs.iter().find(|c| {
            Dimension::ALL.iter().all(|d| {
                d.of(&c.sizes)
                    == if *d == dimension {
                        value
                    } else {
                        d.of(&SMALLEST)
                    }
            })
        })
    };
    let mut out: Vec<Series> = Path::ALL
        .iter()
        .map(|p| Series {
            label: p.name(),
            values: dimension
                .values()
                .iter()
                .map(|v| at(*v).and_then(|c| c.get(*p)).map(|x| x.ns))
                .collect(),
        })
        .collect();
    out.push(Series {
        label: "floor (steady)",
        values: dimension
            .values()
            .iter()
            .map(|v| {
                at(*v)
                    .and_then(|c| c.get(Path::TrackedFlow))
                    .map(|x| x.floor_ns)
            })
            .collect(),
    });
    out
}

/// Writes the scaling curves of `configs` to `path`.
pub fn scaling(configs: &[ConfigCost], path: &FsPath) -> Result<()> {
    let mut canvas = Canvas::new();
    let top = configs
        .iter()
        .flat_map(|c| c.paths.iter().map(|p| p.ns))
        .fold(1.0, f64::max);
    let top = nice_ceiling(top);
    for (i, d) in Dimension::ALL.iter().enumerate() {
        let origin = ((i % 2 * PANEL_W) as i64, (i / 2 * PANEL_H) as i64);
        panel(&mut canvas, origin, *d, &series(configs, *d), top);
    }
    for (i, s) in series(configs, Dimension::Routes).iter().enumerate() {
        let (x, y) = (20 + (i % 4) as i64 * 290, (LEGEND_Y + i / 4 * 24) as i64);
        canvas.line((x, y + 4), (x + 30, y + 4), COLOURS[i], 3);
        canvas.text(x + 38, y, s.label, [0, 0, 0]);
    }
    canvas.text(
        20,
        (HEIGHT - 14) as i64,
        "ns per packet (BPF_PROG_TEST_RUN medians); each panel grows one table, the others at their smallest",
        [90, 90, 90],
    );
    canvas.save(path)
}

fn panel(canvas: &mut Canvas, (ox, oy): (i64, i64), d: Dimension, series: &[Series], top: f64) {
    let (left, right, upper, lower) = (
        ox + 70,
        ox + PANEL_W as i64 - 30,
        oy + 40,
        oy + PANEL_H as i64 - 50,
    );
    let grey = [200, 200, 200];
    let black = [0, 0, 0];
    canvas.text(
        ox + 70,
        oy + 14,
        &format!("cost against {}", d.name()),
        black,
    );
    let y_of = |v: f64| lower - ((v / top) * (lower - upper) as f64) as i64;
    for tick in 0..=4 {
        let v = top * f64::from(tick) / 4.0;
        let y = y_of(v);
        canvas.line((left, y), (right, y), grey, 1);
        canvas.text(ox + 10, y - 4, &format!("{v:>6.0}"), black);
    }
    canvas.line((left, upper), (left, lower), black, 1);
    canvas.line((left, lower), (right, lower), black, 1);
    let values = d.values();
    let x_of = |k: usize| left + 40 + k as i64 * ((right - left - 80) / 2);
    for (k, v) in values.iter().enumerate() {
        let label = v.to_string();
        canvas.text(x_of(k) - label.len() as i64 * 4, lower + 10, &label, black);
    }
    for (i, s) in series.iter().enumerate() {
        let points: Vec<(i64, i64)> = s
            .values
            .iter()
            .enumerate()
            .filter_map(|(k, v)| v.map(|v| (x_of(k), y_of(v))))
            .collect();
        for w in points.windows(2) {
            canvas.line(w[0], w[1], COLOURS[i], 2);
        }
        for p in &points {
            canvas.line((p.0 - 3, p.1), (p.0 + 3, p.1), COLOURS[i], 5);
        }
    }
}

/// 1, 2 or 5 times a power of ten, at least `v`.
fn nice_ceiling(v: f64) -> f64 {
    let base = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * base)
        .find(|x| *x >= v)
        .unwrap_or(10.0 * base)
}
