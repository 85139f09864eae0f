//! Scenario 6: the round schedule keeps a task alive on its own. Five conductors; the
//! member drawn first in round 1 goes offline for the rest of the run, and one Byzantine
//! member publishes nothing at all. Rounds 1 and 2 still close, each by the best-ranked
//! member that is up and honest once its slot begins; round 3, with fewer submitters than
//! the quorum, closes as a carry-over once the fallback slot begins, with the model and the
//! reputation table unchanged.

use crate::common::*;

const N: usize = 5;
const LEN: usize = 200;

#[tokio::test(flavor = "multi_thread")]
async fn rounds_close_by_the_schedule_without_the_first_ranked_member_or_a_quorum() {
    // Boxed: the scenario's future is large in debug builds (see RUST_MIN_STACK too).
    Box::pin(scenario()).await
}

async fn scenario() {
    let (mut conductors, cells) = production_network(N).await;
    let mut t = task(LEN as u32, Rule::Median, 1, N as u32, 3);
    // 90 s to submit (round 0's window opens with the task, before five conductors have
    // seen it: 30 s was too short on a loaded machine), 5 s more to vote, 4 s slots: the
    // fallback begins 90 + 5 + 5 * 4 = 115 s after a round opens.
    t.schedule = RoundSchedule {
        submit_ms: 90_000,
        vote_ms: 5_000,
        slot_ms: 4_000,
    };
    let task_hash: ActionHash = conductors[0]
        .call(&cells[0].zome(ZOME), "create_task", t.clone())
        .await;
    settle(&cells).await;
    let update = |i: usize, round: u32| -> Vec<f32> {
        noise(100 * u64::from(round) + i as u64, LEN)
            .iter()
            .map(|v| 0.1 + 0.01 * v)
            .collect()
    };
    let round_ref = |round| RoundRef {
        task: task_hash.clone(),
        round,
    };

    // Round 0: everyone submits, the task's author aggregates.
    for (i, cell) in cells.iter().enumerate() {
        submit(&conductors[i], cell, &task_hash, 0, &update(i, 0)).await;
    }
    settle(&cells).await;
    let _: ActionHash = conductors[0]
        .call(&cells[0].zome(ZOME), "aggregate_round", round_ref(0))
        .await;
    settle(&cells).await;

    // The member drawn first for round 1 goes offline for good; another stays up but
    // publishes nothing (the Byzantine member).
    let committee: Vec<AgentPubKey> = conductors[0]
        .call(&cells[0].zome(ZOME), "get_committee", round_ref(1))
        .await;
    assert_eq!(
        committee.len(),
        N,
        "every agent holds the committee threshold"
    );
    let index_of = |a: &AgentPubKey| cells.iter().position(|c| c.agent_pubkey() == a).unwrap();
    let offline = index_of(&committee[0]);
    let silent = (offline + 1) % N;
    conductors[offline].shutdown().await;
    let honest: Vec<usize> = (0..N).filter(|&i| i != offline && i != silent).collect();
    let up: Vec<SweetCell> = (0..N)
        .filter(|&i| i != offline)
        .map(|i| cells[i].clone())
        .collect();
    let reader = honest[0];
    let mut last_model = Vec::new();
    let mut last_table = Vec::new();

    for round in 1..=3u32 {
        let r = round_ref(round);
        // Round 3 has two submitters, below the quorum of three.
        let submitters = if round == 3 {
            &honest[..2]
        } else {
            &honest[..]
        };
        let mut submissions = Vec::new();
        for &i in submitters {
            submissions.push(
                submit(
                    &conductors[i],
                    &cells[i],
                    &task_hash,
                    round,
                    &update(i, round),
                )
                .await
                .submission,
            );
        }
        settle(&up).await;
        let committee: Vec<AgentPubKey> = conductors[reader]
            .call(&cells[reader].zome(ZOME), "get_committee", r.clone())
            .await;
        for &m in &honest {
            if !committee.contains(cells[m].agent_pubkey()) {
                continue;
            }
            let votes = submissions
                .iter()
                .map(|s| CastVote {
                    submission: s.clone(),
                    loss_before: 1.0,
                    loss_after: 0.9,
                    samples: 20,
                })
                .collect();
            let _: ActionHash = conductors[m]
                .call(
                    &cells[m].zome(ZOME),
                    "cast_ballot",
                    CastBallot {
                        round: r.clone(),
                        votes,
                    },
                )
                .await;
        }
        settle(&up).await;

        // The best-ranked honest member closes the round once the schedule lets it: its
        // own slot, or for round 3 (no quorum) the fallback slot.
        let (rank, aggregator) = committee
            .iter()
            .enumerate()
            .find_map(|(rank, m)| {
                let i = index_of(m);
                honest.contains(&i).then_some((rank, i))
            })
            .expect("an honest member");
        let aggregate: ActionHash = eventually(240, || {
            let (c, cell, r) = (&conductors[aggregator], &cells[aggregator], r.clone());
            async move {
                c.call_fallible::<_, ActionHash>(&cell.zome(ZOME), "aggregate_round", r)
                    .await
                    .ok()
            }
        })
        .await;
        settle(&up).await;
        let state: RoundState = conductors[reader]
            .call(&cells[reader].zome(ZOME), "get_round", r.clone())
            .await;
        let (hash, closed) = state.aggregate.expect("the round closed");
        assert_eq!(hash, aggregate);
        let model: GlobalModel = conductors[reader]
            .call(
                &cells[reader].zome(ZOME),
                "get_global_model",
                ModelRef {
                    task: task_hash.clone(),
                    round: Some(round),
                },
            )
            .await;
        if round < 3 {
            assert!(
                closed
                    .outcomes
                    .iter()
                    .all(|o| o.verdict == Verdict::Included),
                "round {round} (aggregated by rank {rank}): {:?}",
                closed.outcomes
            );
            assert_ne!(model.model, last_model, "round {round} moved the model");
        } else {
            // A carry-over: nothing aggregated, the model as round 2 left it.
            assert_eq!(closed.outcomes.len(), 2);
            assert!(closed
                .outcomes
                .iter()
                .all(|o| o.verdict == Verdict::Excluded(Exclusion::NoQuorum)));
            assert_eq!(model.model, last_model, "a carry-over keeps the model");
        }
        last_model = model.model;
        if round == 3 {
            assert_eq!(
                closed.reputation, last_table,
                "a carry-over keeps the reputation table"
            );
        }
        last_table = closed.reputation;
    }
}
