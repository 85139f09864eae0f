//! Mycelix FL's side of the local-training comparison run by `bench/train.sh`.
//!
//! ```text
//! train_bench MODEL EXAMPLES BATCH REPS
//! ```
//! trains MODEL (`logreg_mnist`, `fc_mnist` or `cnn_mnist`) for one epoch over EXAMPLES
//! random 28x28 images with ByzFL's optimiser settings (SGD, momentum 0.9, weight decay
//! 1e-4) in batches of BATCH, after one warm-up epoch, REPS times, and prints
//! `samples_per_s <model> <median>`. Threads follow `RAYON_NUM_THREADS`, as candle's do.
//! The values of the pixels and labels do not change the work, so they are random.

use std::time::Instant;

use fl_learn::data::Dataset;
use fl_learn::model::Model;
use fl_learn::train::{local_train, Sgd};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        return Err("usage: train_bench MODEL EXAMPLES BATCH REPS".into());
    }
    fl_learn::train::tune_allocator();
    let model = Model::byzfl(&args[1]).ok_or_else(|| format!("unknown model {}", args[1]))?;
    let (examples, batch, reps): (usize, usize, usize) =
        (args[2].parse()?, args[3].parse()?, args[4].parse()?);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let x = Array2::from_shape_fn((examples, 784), |_| rng.random_range(0.0f32..1.0));
    let y = (0..examples).map(|i| i % 10).collect();
    let data = Dataset::new("random", x, y)?;
    let sgd = Sgd {
        epochs: 1,
        batch_size: batch,
        lr: 0.01,
        momentum: 0.9,
        weight_decay: 1e-4,
    };
    let mut params = model.init(&mut rng);
    params = local_train(&model, &params, &data, &sgd, &mut rng);
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let start = Instant::now();
        params = local_train(&model, &params, &data, &sgd, &mut rng);
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    if !params.iter().all(|v| v.is_finite()) {
        return Err("training diverged".into());
    }
    println!("samples_per_s {} {:.1}", args[1], examples as f64 / median);
    Ok(())
}
