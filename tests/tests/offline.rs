//! Scenario 5: a conductor goes offline mid-round; the round still closes at quorum; when
//! the same conductor starts again its data is intact and it catches up and takes part.

use crate::common::*;

const LEN: usize = 500;

#[tokio::test(flavor = "multi_thread")]
async fn round_closes_at_quorum_while_a_peer_is_offline_and_the_peer_catches_up() {
    // Boxed: the scenario's future is large in debug builds (see RUST_MIN_STACK too).
    Box::pin(scenario()).await
}

async fn scenario() {
    let (mut conductors, cells) = production_network(4).await;
    let mut t = task(LEN as u32, Rule::Median, 1, 2, 3);
    // Nobody votes in this scenario, so an aggregate may cite no ballots only once the
    // fallback slot has begun: 90 s after the round opens and two 1 s slots (the submission
    // window must also hold round 0's submissions, made after four conductors have seen
    // the task).
    t.schedule = RoundSchedule {
        submit_ms: 90_000,
        vote_ms: 0,
        slot_ms: 1_000,
    };
    let task_hash: ActionHash = conductors[0]
        .call(&cells[0].zome(ZOME), "create_task", t)
        .await;
    settle(&cells).await;
    let update = |i: usize| -> Vec<f32> {
        noise(i as u64, LEN)
            .iter()
            .map(|v| 0.1 + 0.01 * v)
            .collect()
    };

    // Round 0 with everyone.
    let mut own = Vec::new();
    for i in 0..4 {
        own.push(
            submit(&conductors[i], &cells[i], &task_hash, 0, &update(i))
                .await
                .submission,
        );
    }
    settle(&cells).await;
    let r0 = RoundRef {
        task: task_hash.clone(),
        round: 0,
    };
    let _: ActionHash = conductors[0]
        .call(&cells[0].zome(ZOME), "aggregate_round", r0.clone())
        .await;
    settle(&cells).await;

    // Round 1 opens; peer 3 goes offline before submitting.
    conductors[3].shutdown().await;
    let online = &cells[..3];
    for i in 0..3 {
        submit(&conductors[i], &cells[i], &task_hash, 1, &update(10 + i)).await;
    }
    settle(online).await;
    let r1 = RoundRef {
        task: task_hash.clone(),
        round: 1,
    };
    let committee: Vec<AgentPubKey> = conductors[0]
        .call(&cells[0].zome(ZOME), "get_committee", r1.clone())
        .await;
    // The best-ranked member that is online aggregates, once (no ballots being cast) the
    // fallback slot has begun.
    let aggregator = committee
        .iter()
        .find_map(|m| online.iter().position(|c| c.agent_pubkey() == m))
        .expect("an online committee member");
    let agg1: ActionHash = eventually(240, || {
        let (c, cell, r) = (&conductors[aggregator], &cells[aggregator], r1.clone());
        async move {
            c.call_fallible::<_, ActionHash>(&cell.zome(ZOME), "aggregate_round", r)
                .await
                .ok()
        }
    })
    .await;
    settle(online).await;
    let state1: RoundState = conductors[1]
        .call(&cells[1].zome(ZOME), "get_round", r1.clone())
        .await;
    assert_eq!(
        state1.submissions.len(),
        3,
        "the round closed at quorum without peer 3"
    );
    assert_eq!(state1.aggregate.as_ref().map(|a| &a.0), Some(&agg1));

    // Peer 3 comes back: its own data is intact and it catches up with round 1.
    conductors[3].startup(false).await;
    settle(&cells).await;
    let state0: RoundState = conductors[3]
        .call(&cells[3].zome(ZOME), "get_round", r0.clone())
        .await;
    assert!(
        state0.submissions.iter().any(|s| s.hash == own[3]),
        "peer 3's round-0 submission survived the restart"
    );
    let seen: RoundState = eventually(120, || async {
        let s: RoundState = conductors[3]
            .call(&cells[3].zome(ZOME), "get_round", r1.clone())
            .await;
        s.aggregate.is_some().then_some(s)
    })
    .await;
    assert_eq!(seen.aggregate.map(|a| a.0), Some(agg1.clone()));
    let model3: GlobalModel = conductors[3]
        .call(
            &cells[3].zome(ZOME),
            "get_global_model",
            ModelRef {
                task: task_hash.clone(),
                round: None,
            },
        )
        .await;
    let model0: GlobalModel = conductors[0]
        .call(
            &cells[0].zome(ZOME),
            "get_global_model",
            ModelRef {
                task: task_hash.clone(),
                round: None,
            },
        )
        .await;
    assert_eq!(model3.round, Some(1));
    assert_eq!(model3.model, model0.model);

    // And it takes part in round 2 on its own.
    let s = submit(&conductors[3], &cells[3], &task_hash, 2, &update(3)).await;
    settle(&cells).await;
    let r2 = RoundRef {
        task: task_hash.clone(),
        round: 2,
    };
    let state2: RoundState = conductors[0]
        .call(&cells[0].zome(ZOME), "get_round", r2)
        .await;
    assert!(state2.submissions.iter().any(|x| x.hash == s.submission));
}
