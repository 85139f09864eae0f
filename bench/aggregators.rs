//! Every aggregator at n in {10, 50, 100} inputs and d in {10k, 100k} parameters.
//!
//! `cargo bench -p mycelix_fl_bench --bench aggregators` runs criterion for each cell and then
//! prints one markdown table of median times per call. Targets on a 2-core machine:
//! Krum and Multi-Krum at n=100, d=100k under 60 ms; median and trimmed mean under 40 ms.
//! Pass a criterion filter to run a subset, e.g. `-- krum/n100`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Mutex;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion};
use fl_core::aggregate::{self, WeiszfeldParams};
use mycelix_fl_bench::timed;

const NS: [usize; 3] = [10, 50, 100];
const DS: [usize; 2] = [10_000, 100_000];
const RULES: [&str; 8] = [
    "mean",
    "krum",
    "multi_krum",
    "median",
    "trimmed_mean",
    "geometric_median",
    "bulyan",
    "nnm",
];

/// Median per-call time of every (rule, n, d) measured in this run.
static RESULTS: Mutex<BTreeMap<(usize, usize, usize), Vec<f64>>> = Mutex::new(BTreeMap::new());

/// `n` inputs of length `d`: an honest cluster around a common direction plus `f` inputs
/// scaled and flipped, from a fixed xorshift stream (same inputs every run).
fn inputs(n: usize, d: usize, f: usize) -> Vec<Vec<f32>> {
    let mut s = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let center: Vec<f32> = (0..d).map(|_| next()).collect();
    (0..n)
        .map(|i| {
            let scale = if i < f { -10.0 } else { 1.0 };
            center.iter().map(|c| scale * (c + 0.1 * next())).collect()
        })
        .collect()
}

fn run(rule: &str, x: &[Vec<f32>], f: usize) {
    let out = match rule {
        "mean" => aggregate::mean(x, None).map(|a| a.aggregate),
        "krum" => aggregate::krum(x, f).map(|a| a.aggregate),
        "multi_krum" => aggregate::multi_krum(x, f, x.len() - f, None).map(|a| a.aggregate),
        "median" => aggregate::coordinate_median(x, f).map(|a| a.aggregate),
        "trimmed_mean" => aggregate::trimmed_mean(x, f).map(|a| a.aggregate),
        "geometric_median" => {
            let p = WeiszfeldParams {
                nu: 0.1,
                max_iterations: 3,
                tolerance: 0.0,
            };
            aggregate::geometric_median(x, f, None, p).map(|a| a.aggregate)
        }
        "bulyan" => aggregate::bulyan(x, f).map(|a| a.aggregate),
        "nnm" => aggregate::nnm(x, f).map(|m| m.into_iter().next().unwrap_or_default()),
        other => panic!("unknown rule {other}"),
    };
    black_box(out.expect("benchmark inputs satisfy every precondition"));
}

fn bench(c: &mut Criterion) {
    for (di, &d) in DS.iter().enumerate() {
        for (ni, &n) in NS.iter().enumerate() {
            // The largest f that every rule accepts (Bulyan: n >= 4f + 3).
            let f = (n - 3) / 4;
            let x = inputs(n, d, f);
            let mut group = c.benchmark_group(format!("n{n}_d{}k", d / 1000));
            group.sample_size(10);
            group.warm_up_time(Duration::from_millis(300));
            group.measurement_time(Duration::from_secs(if n * d >= 5_000_000 { 3 } else { 1 }));
            for (ri, rule) in RULES.iter().enumerate() {
                group.bench_with_input(BenchmarkId::from_parameter(rule), &x, |b, x| {
                    b.iter_custom(|iters| timed(&RESULTS, (ri, di, ni), iters, || run(rule, x, f)))
                });
            }
            group.finish();
        }
    }
}

fn print_table() {
    let results = RESULTS.lock().unwrap();
    if results.is_empty() {
        return;
    }
    let cells: Vec<(usize, usize)> = (0..DS.len())
        .flat_map(|d| (0..NS.len()).map(move |n| (d, n)))
        .collect();
    print!("\n| rule (f = (n-3)/4) |");
    for &(d, n) in &cells {
        print!(" n={} d={}k |", NS[n], DS[d] / 1000);
    }
    print!("\n|---|");
    for _ in &cells {
        print!("---:|");
    }
    println!();
    for (ri, rule) in RULES.iter().enumerate() {
        print!("| {rule} |");
        for &(d, n) in &cells {
            match results.get(&(ri, d, n)) {
                Some(times) => {
                    let mut t = times.clone();
                    t.sort_by(f64::total_cmp);
                    print!(" {:.2} ms |", t[t.len() / 2] * 1e3);
                }
                None => print!(" - |"),
            }
        }
        println!();
    }
    println!("\nmedian time per call; targets at n=100 d=100k: krum, multi_krum < 60 ms; median, trimmed_mean < 40 ms");
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
    print_table();
}
