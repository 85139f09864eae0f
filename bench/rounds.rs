//! `fl_core::decide_round`, the work every validator repeats for every aggregate, at n in
//! {10, 50, 100} submissions of d in {100k, 431k} parameters (431k: `cnn_mnist`), with
//! the coordinate median, a committee of ten that accepts everything, and the alignment
//! rule (`RoundParams::aligned_credit`) off and on.
//!
//! `cargo bench -p mycelix_fl_bench --bench rounds` runs criterion for each cell and then
//! prints one markdown table of median times per call, with the rule's cost as a ratio
//! measured in the same run. Pass a criterion filter to run a subset, e.g. `-- n10_`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Mutex;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion};
use fl_core::aggregate::Rule;
use fl_core::{decide_round, PogqMeasurement, RoundParams, SubmissionInput};
use mycelix_fl_bench::timed;

const NS: [usize; 3] = [10, 50, 100];
const DS: [usize; 2] = [100_000, 431_080];
const COMMITTEE: u32 = 10;

/// Median per-call time of every (aligned_credit, n, d) measured in this run.
static RESULTS: Mutex<BTreeMap<(bool, usize, usize), Vec<f64>>> = Mutex::new(BTreeMap::new());

/// The earlier model, the base model and `n` updates of length `d` around the step between
/// them (honest work continuing the descent), from a fixed xorshift stream.
fn round_inputs(n: usize, d: usize) -> (Vec<f32>, Vec<f32>, Vec<Vec<f32>>) {
    let mut s = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let earlier: Vec<f32> = (0..d).map(|_| next()).collect();
    let step: Vec<f32> = (0..d).map(|_| 1e-3 * next()).collect();
    let base: Vec<f32> = earlier.iter().zip(&step).map(|(e, s)| e + s).collect();
    let updates = (0..n)
        .map(|_| step.iter().map(|s| s + 1e-3 * next()).collect())
        .collect();
    (earlier, base, updates)
}

fn bench(c: &mut Criterion) {
    let proof = PogqMeasurement {
        loss_before: 1.0,
        loss_after: 0.9,
        samples: 10,
    };
    let committee: Vec<u32> = (1000..1000 + COMMITTEE).collect();
    for &d in &DS {
        for &n in &NS {
            let (earlier, base, updates) = round_inputs(n, d);
            let subs: Vec<SubmissionInput<'_, u32>> = updates
                .iter()
                .enumerate()
                .map(|(i, u)| SubmissionInput {
                    agent: i as u32,
                    update: u,
                    proof: Some(proof),
                    votes: committee.iter().map(|&m| (m, true)).collect(),
                })
                .collect();
            let mut group = c.benchmark_group(format!("n{n}_d{}k", d / 1000));
            group.sample_size(10);
            group.warm_up_time(Duration::from_millis(300));
            group.measurement_time(Duration::from_secs(if n * d >= 10_000_000 { 4 } else { 2 }));
            for aligned in [false, true] {
                let mut params = RoundParams::new(Rule::Median, ((n - 1) / 2) as u32);
                params.aligned_credit = aligned;
                let name = if aligned { "aligned_credit" } else { "plain" };
                group.bench_with_input(BenchmarkId::from_parameter(name), &subs, |b, subs| {
                    b.iter_custom(|iters| {
                        timed(&RESULTS, (aligned, n, d), iters, || {
                            let r =
                                decide_round(&params, &base, Some(&earlier), &[], &committee, subs)
                                    .expect("benchmark inputs are valid");
                            black_box(r);
                        })
                    })
                });
            }
            group.finish();
        }
    }
}

fn median(times: &[f64]) -> f64 {
    let mut t = times.to_vec();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn print_table() {
    let results = RESULTS.lock().unwrap();
    if results.is_empty() {
        return;
    }
    println!("\n| n | d | plain | aligned_credit | ratio |\n|---:|---:|---:|---:|---:|");
    for &d in &DS {
        for &n in &NS {
            let plain = results.get(&(false, n, d)).map(|t| median(t));
            let aligned = results.get(&(true, n, d)).map(|t| median(t));
            let ms = |t: Option<f64>| t.map_or("-".to_string(), |t| format!("{:.1} ms", t * 1e3));
            let ratio = match (plain, aligned) {
                (Some(p), Some(a)) => format!("{:.3}", a / p),
                _ => "-".to_string(),
            };
            println!("| {n} | {d} | {} | {} | {ratio} |", ms(plain), ms(aligned));
        }
    }
    println!("\nmedian time per decide_round call (coordinate median, committee of {COMMITTEE} accepting all)");
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
    print_table();
}
