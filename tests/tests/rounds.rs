//! Scenarios 1 and 2: full rounds on seven conductors, two of them Byzantine, chained over
//! three rounds with the committee redrawn each round.

use crate::common::*;

const LEN: usize = 2000;
const N: usize = 7;
const BYZANTINE: [usize; 2] = [5, 6];

/// Round `round`'s update of peer `i`: honest peers share a direction plus their own noise;
/// peer 5 flips and scales it, peer 6 sends large noise. In round 2 peer 4 sends noise
/// orthogonal to the shared direction, which the honest members pass: aggregated, but
/// across the last step, so it earns no reputation.
fn update(i: usize, round: u32, center: &[f32]) -> Vec<f32> {
    match i {
        4 if round == 2 => {
            let n = noise(77, LEN);
            let dot: f32 = n.iter().zip(center).map(|(a, b)| a * b).sum();
            let cc: f32 = center.iter().map(|c| c * c).sum();
            n.iter()
                .zip(center)
                .map(|(a, c)| a - dot / cc * c)
                .collect()
        }
        5 => center.iter().map(|c| -5.0 * c).collect(),
        6 => noise(100 + u64::from(round), LEN)
            .iter()
            .map(|v| 20.0 * v)
            .collect(),
        _ => center
            .iter()
            .zip(noise(10 * i as u64 + u64::from(round), LEN))
            .map(|(c, e)| c + 0.05 * e)
            .collect(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn three_rounds_with_two_byzantine_peers_of_seven() {
    // Boxed: the scenario's future is large in debug builds (see RUST_MIN_STACK too).
    Box::pin(scenario()).await
}

async fn scenario() {
    let (conductors, cells) = production_network(N).await;
    let index_of = |agent: &AgentPubKey| {
        cells
            .iter()
            .position(|c| c.agent_pubkey() == agent)
            .expect("known agent")
    };
    // A 5-seat committee among 7 peers never has a Byzantine majority. The coordinate
    // median: Multi-Krum keeps n - f updates, so with its fixed f = 2 it would also leave
    // out honest work once the committee has removed the attackers.
    // Reputation only for updates along the previous step: from round 2 on, validation
    // reads the model two aggregates back.
    let mut t = task(LEN as u32, Rule::Median, 2, 5, N as u32);
    t.round.aligned_credit = true;
    let task_hash: ActionHash = conductors[0]
        .call(&cells[0].zome(ZOME), "create_task", t.clone())
        .await;
    settle(&cells).await;
    let center = noise(1, LEN);
    let mut previous: Option<(ActionHash, RoundAggregate)> = None;
    // The global models so far, the initial one first.
    let mut models_so_far: Vec<Vec<f32>> = vec![vec![0.0; LEN]];

    for round in 0..3u32 {
        let updates: Vec<Vec<f32>> = (0..N).map(|i| update(i, round, &center)).collect();
        let mut submissions = Vec::new();
        for i in 0..N {
            submissions.push(
                submit(&conductors[i], &cells[i], &task_hash, round, &updates[i])
                    .await
                    .submission,
            );
        }
        settle(&cells).await;

        let r = RoundRef {
            task: task_hash.clone(),
            round,
        };
        let committee: Vec<AgentPubKey> = conductors[1]
            .call(&cells[1].zome(ZOME), "get_committee", r.clone())
            .await;
        match &previous {
            None => assert!(committee.is_empty(), "round 0 has no committee"),
            Some((_, prev)) => {
                // Redrawn natively from the task's seed for the round, the previous
                // aggregate's reputation table and the anchors (the previous aggregate's
                // entry hash for the agents it listed first): the zome's wasm draw agrees.
                let entry = Entry::try_from(prev.clone()).expect("an aggregate is an entry");
                let expected = federated_learning_integrity::committee::committee_from(
                    &t,
                    prev,
                    &EntryHash::with_data_sync(&entry),
                    federated_learning_integrity::committee::committee_seed(&task_hash, round),
                );
                assert_eq!(expected.len(), 5, "round {round}: enough eligible agents");
                assert_eq!(committee, expected, "round {round} committee");
                for member in &committee {
                    let m = index_of(member);
                    // Honest members see attackers' updates raise their loss; attackers lie.
                    let votes = submissions
                        .iter()
                        .enumerate()
                        .map(|(j, s)| {
                            let looks_good = BYZANTINE.contains(&j) == BYZANTINE.contains(&m);
                            CastVote {
                                submission: s.clone(),
                                loss_before: 1.0,
                                loss_after: if looks_good { 0.9 } else { 1.5 },
                                samples: 50,
                            }
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
                settle(&cells).await;
            }
        }

        let aggregator = if round == 0 {
            0
        } else {
            index_of(&committee[0])
        };
        let state: RoundState = conductors[aggregator]
            .call(&cells[aggregator].zome(ZOME), "get_round", r.clone())
            .await;
        assert!(state.quorum_met);
        assert_eq!(state.submissions.len(), N);
        let agg_hash: ActionHash = conductors[aggregator]
            .call(&cells[aggregator].zome(ZOME), "aggregate_round", r.clone())
            .await;
        settle(&cells).await;

        // Every conductor reads the same aggregate and global model.
        let mut models = Vec::new();
        for i in 0..N {
            let s: RoundState = conductors[i]
                .call(&cells[i].zome(ZOME), "get_round", r.clone())
                .await;
            assert_eq!(
                s.aggregate.as_ref().map(|a| &a.0),
                Some(&agg_hash),
                "conductor {i} sees another aggregate"
            );
            // What clients poll agrees with the round it stands for.
            let ballots: std::collections::BTreeSet<&ActionHash> = s
                .submissions
                .iter()
                .flat_map(|x| x.votes.iter().map(|(b, _, _)| b))
                .collect();
            let progress: federated_learning::RoundProgress = conductors[i]
                .call(
                    &cells[i].zome(ZOME),
                    "round_progress",
                    s.base.clone().expect("the round is open"),
                )
                .await;
            assert_eq!(
                progress,
                federated_learning::RoundProgress {
                    submissions: N as u32,
                    ballots: ballots.len() as u32,
                    aggregates: 1,
                },
                "conductor {i}"
            );
            let m: GlobalModel = conductors[i]
                .call(
                    &cells[i].zome(ZOME),
                    "get_global_model",
                    ModelRef {
                        task: task_hash.clone(),
                        round: Some(round),
                    },
                )
                .await;
            models.push(m.model);
        }
        assert!(models.windows(2).all(|w| w[0] == w[1]));
        let agg = state_aggregate(&conductors, &cells, &r).await;
        match &previous {
            None => assert_eq!(agg.base, task_hash),
            Some((h, _)) => assert_eq!(
                &agg.base, h,
                "round {round} chains to the previous aggregate"
            ),
        }

        // The aggregate equals fl_core's decision computed natively on the same inputs.
        let by_hash: Vec<_> = agg
            .outcomes
            .iter()
            .map(|o| {
                state
                    .submissions
                    .iter()
                    .find(|s| s.hash == o.submission)
                    .expect("listed submission")
            })
            .collect();
        let inputs: Vec<fl_core::SubmissionInput<'_, AgentPubKey>> = by_hash
            .iter()
            .map(|s| fl_core::SubmissionInput {
                agent: s.author.clone(),
                update: &updates[index_of(&s.author)],
                proof: Some(s.proof.measurement()),
                votes: s
                    .votes
                    .iter()
                    .map(|(_, member, v)| (member.clone(), v.accept))
                    .collect(),
            })
            .collect();
        let base_model = &models_so_far[round as usize];
        let earlier_model = (round as usize)
            .checked_sub(1)
            .map(|r| &models_so_far[r][..]);
        let table: Vec<(AgentPubKey, Reputation)> = previous
            .as_ref()
            .map(|(_, p)| {
                p.reputation
                    .iter()
                    .map(|e| (e.agent.clone(), e.reputation))
                    .collect()
            })
            .unwrap_or_default();
        let native = fl_core::decide_round(
            &t.round,
            base_model,
            earlier_model,
            &table,
            &committee,
            &inputs,
        )
        .expect("native decision");
        if round == 2 {
            // The zome applied the alignment rule: without it, peer 4 would have gained.
            let off =
                fl_core::decide_round(&t.round, base_model, None, &table, &committee, &inputs)
                    .expect("native decision without the rule");
            assert_ne!(
                off.reputation, native.reputation,
                "round 2: the rule changed nothing"
            );
        }
        assert_eq!(
            agg.model,
            f32_bytes(&native.model),
            "round {round}: model differs from native fl_core"
        );
        let native_table: Vec<(AgentPubKey, Reputation)> = native.reputation.clone();
        let zome_table: Vec<(AgentPubKey, Reputation)> = agg
            .reputation
            .iter()
            .map(|e| (e.agent.clone(), e.reputation))
            .collect();
        assert_eq!(zome_table, native_table);
        for (o, n) in agg.outcomes.iter().zip(&native.outcomes) {
            assert_eq!(o.verdict, n.verdict);
        }

        // Honest work is in, attacks are out with their reason.
        for (o, s) in agg.outcomes.iter().zip(&by_hash) {
            let i = index_of(&s.author);
            if BYZANTINE.contains(&i) {
                let reason = if round == 0 {
                    Exclusion::AggregatorOutlier
                } else {
                    Exclusion::CommitteeRejected
                };
                assert_eq!(
                    o.verdict,
                    Verdict::Excluded(reason),
                    "round {round}, peer {i}"
                );
            } else {
                assert_eq!(o.verdict, Verdict::Included, "round {round}, peer {i}");
            }
        }
        models_so_far.push(Tensor::decode(&agg.model, LEN).unwrap().into_vec());
        previous = Some((agg_hash, agg));
    }

    // Reputation followed behaviour: every attacker below the initial value, every honest
    // peer above it, and the list of rounds is complete.
    let (_, last) = previous.expect("three rounds");
    let initial = ReputationParams::default().initial;
    for e in &last.reputation {
        let i = index_of(&e.agent);
        if BYZANTINE.contains(&i) {
            assert!(e.reputation < initial, "attacker {i}: {}", e.reputation);
        } else {
            assert!(e.reputation > initial, "honest {i}: {}", e.reputation);
        }
    }
    let rounds: Vec<RoundSummary> = conductors[3]
        .call(&cells[3].zome(ZOME), "list_rounds", task_hash.clone())
        .await;
    assert_eq!(rounds.len(), 3);
    assert!(rounds
        .iter()
        .all(|r| r.included == 5 && r.excluded.len() == 2));
}

async fn state_aggregate(
    conductors: &SweetConductorBatch,
    cells: &[SweetCell],
    r: &RoundRef,
) -> RoundAggregate {
    let s: RoundState = conductors[2]
        .call(&cells[2].zome(ZOME), "get_round", r.clone())
        .await;
    s.aggregate.expect("aggregated").1
}
