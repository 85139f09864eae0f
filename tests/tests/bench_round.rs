//! Zome-call and round timings; a benchmark, not a test (ignored by default):
//!
//! ```sh
//! cargo test -p mycelix_fl_tests -- --ignored --nocapture bench_round
//! ```
//!
//! Prints the time of `submit_update` and `aggregate_round` zome calls for 10 agents x 10k
//! parameters and 20 agents x 100k parameters (all agents in one conductor, so the calls
//! are measured without network latency), then the wall time of full rounds on 10
//! conductors (everyone submits, the round is aggregated, every conductor has seen it).
//! Conductors run in the dev profile with the wasm compiler optimised (see Cargo.toml).

use std::time::{Duration, Instant};

use crate::common::*;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn zome_call_and_round_timings() {
    Box::pin(bench()).await
}

async fn zome_calls(agents: usize, params: usize) -> (Duration, Duration, Duration) {
    let dna = SweetDnaFile::from_bundle(
        &std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../dnas/federated_learning/workdir/federated_learning.dna"),
    )
    .await
    .expect("run scripts/pack.sh first");
    let mut conductors = SweetConductorBatch::from_standard_config_rendezvous(1).await;
    let apps = conductors[0]
        .setup_apps("bench", agents, &[dna])
        .await
        .unwrap();
    let cells = apps.cells_flattened();
    let c = &conductors[0];
    let f = ((agents - 3) / 4) as u32;
    let t = task(
        params as u32,
        Rule::MultiKrum { m: None },
        f,
        3,
        agents as u32,
    );
    let task_hash: ActionHash = c.call(&cells[0].zome(ZOME), "create_task", t).await;
    let mut submit_times = Vec::new();
    for (i, cell) in cells.iter().enumerate() {
        let update: Vec<f32> = noise(i as u64, params);
        let start = Instant::now();
        submit(c, cell, &task_hash, 0, &update).await;
        submit_times.push(start.elapsed());
    }
    let r = RoundRef {
        task: task_hash.clone(),
        round: 0,
    };
    let start = Instant::now();
    let _: RoundAggregate = c
        .call(&cells[0].zome(ZOME), "preview_aggregate", r.clone())
        .await;
    let preview = start.elapsed();
    let start = Instant::now();
    let _: ActionHash = c.call(&cells[0].zome(ZOME), "aggregate_round", r).await;
    (median(submit_times), preview, start.elapsed())
}

async fn bench() {
    println!("\n| agents x params | submit_update (median) | preview_aggregate | aggregate_round (incl. validation) |");
    println!("|---|---:|---:|---:|");
    for (agents, params) in [(10, 10_000), (20, 100_000)] {
        let (submit, preview, aggregate) = zome_calls(agents, params).await;
        println!(
            "| {agents} x {}k | {} | {} | {} |",
            params / 1000,
            ms(submit),
            ms(preview),
            ms(aggregate)
        );
    }

    let (conductors, cells) = production_network(10).await;
    let params = 10_000;
    let mut t = task(params as u32, Rule::MultiKrum { m: None }, 1, 3, 10);
    // No committee (nobody reaches the threshold): the rounds time submissions and
    // aggregation; with a committee, an aggregate would need its members' ballots first.
    t.round.reputation.committee_threshold = Reputation::ONE;
    let task_hash: ActionHash = conductors[0]
        .call(&cells[0].zome(ZOME), "create_task", t)
        .await;
    settle(&cells).await;
    let mut round_times = Vec::new();
    for round in 0..5u32 {
        let start = Instant::now();
        let calls = (0..10).map(|i| {
            let update = noise(100 * u64::from(round) + i as u64, params);
            let (c, cell, task) = (&conductors[i], &cells[i], task_hash.clone());
            async move { submit(c, cell, &task, round, &update).await }
        });
        futures::future::join_all(calls).await;
        let r = RoundRef {
            task: task_hash.clone(),
            round,
        };
        // The task's author aggregates every round (no committee).
        let aggregator = 0;
        let aggregate: ActionHash = eventually(60, || {
            let (c, cell, r) = (&conductors[aggregator], &cells[aggregator], r.clone());
            async move {
                let state: RoundState = c.call(&cell.zome(ZOME), "get_round", r.clone()).await;
                if !state.quorum_met {
                    return None;
                }
                c.call_fallible::<_, ActionHash>(&cell.zome(ZOME), "aggregate_round", r)
                    .await
                    .ok()
            }
        })
        .await;
        for i in 0..10 {
            eventually(60, || {
                let (c, cell, r, want) = (&conductors[i], &cells[i], r.clone(), aggregate.clone());
                async move {
                    let s: RoundState = c.call(&cell.zome(ZOME), "get_round", r).await;
                    (s.aggregate.map(|a| a.0) == Some(want)).then_some(())
                }
            })
            .await;
        }
        round_times.push(start.elapsed());
    }
    println!(
        "\nfull round on 10 conductors, 10k parameters (submit, aggregate, seen by all): median {} over {} rounds {:?}",
        ms(median(round_times.clone())),
        round_times.len(),
        round_times.iter().map(|d| ms(*d)).collect::<Vec<_>>()
    );
}
