//! fl_core's side of the peer comparison run by `bench/peers.sh`.
//!
//! ```text
//! peer_bench INPUT N D F REPS OUT_DIR
//! ```
//! reads `N x D` little-endian `f32` values (row-major) from INPUT, runs every aggregator
//! REPS times, prints one line `rule <name> <median seconds>` per rule and writes each
//! aggregate as raw `f32` to `OUT_DIR/<name>.f32`, so the caller can compare results with
//! the peers' on the very same inputs.

use std::time::Instant;

use fl_core::aggregate::{self, WeiszfeldParams};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 7 {
        return Err("usage: peer_bench INPUT N D F REPS OUT_DIR".into());
    }
    let (n, d, f, reps): (usize, usize, usize, usize) = (
        args[2].parse()?,
        args[3].parse()?,
        args[4].parse()?,
        args[5].parse()?,
    );
    let bytes = std::fs::read(&args[1])?;
    if bytes.len() != n * d * 4 {
        return Err(format!(
            "{} holds {} bytes, expected {}",
            args[1],
            bytes.len(),
            n * d * 4
        )
        .into());
    }
    let values: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let x: Vec<Vec<f32>> = values.chunks_exact(d).map(<[f32]>::to_vec).collect();
    let out_dir = std::path::Path::new(&args[6]);
    std::fs::create_dir_all(out_dir)?;
    let byzfl_geomed = WeiszfeldParams {
        nu: 0.1,
        max_iterations: 3,
        tolerance: 0.0,
    };
    type Run<'a> = Box<dyn Fn() -> Result<Vec<f32>, aggregate::AggregateError> + 'a>;
    let rules: Vec<(&str, Run)> = vec![
        (
            "mean",
            Box::new(|| Ok(aggregate::mean(&x, None)?.aggregate)),
        ),
        ("krum", Box::new(|| Ok(aggregate::krum(&x, f)?.aggregate))),
        (
            "multi_krum",
            Box::new(|| Ok(aggregate::multi_krum(&x, f, n - f, None)?.aggregate)),
        ),
        (
            "median",
            Box::new(|| Ok(aggregate::coordinate_median(&x, f)?.aggregate)),
        ),
        (
            "trimmed_mean",
            Box::new(|| Ok(aggregate::trimmed_mean(&x, f)?.aggregate)),
        ),
        (
            "geometric_median",
            Box::new(|| Ok(aggregate::geometric_median(&x, f, None, byzfl_geomed)?.aggregate)),
        ),
        (
            "bulyan",
            Box::new(|| Ok(aggregate::bulyan(&x, f)?.aggregate)),
        ),
        ("nnm", Box::new(|| Ok(aggregate::nnm(&x, f)?.concat()))),
    ];
    for (name, run) in rules {
        let mut times = Vec::with_capacity(reps);
        let mut result = Vec::new();
        for _ in 0..reps.max(1) {
            let start = Instant::now();
            result = run()?;
            times.push(start.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        let bytes: Vec<u8> = result.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(out_dir.join(format!("{name}.f32")), bytes)?;
        println!("rule {name} {}", times[times.len() / 2]);
    }
    Ok(())
}
