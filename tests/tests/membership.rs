//! Closed tasks (sybil resistance): an agent without a valid invite can neither join nor
//! write; forged, reused and foreign-bound invites are rejected, through the honest
//! coordinator where it lets the bad thing through and the `adversary` coordinator where it
//! would refuse; invites delivered as membrane proofs are checked at install and by the
//! agent's authorities; members invite within their quota and only with enough reputation.

use crate::common::*;
use federated_learning_integrity::signing::invite_message;

const LEN: usize = 50;

#[derive(serde::Serialize, Debug)]
struct RawLink {
    base: AnyLinkableHash,
    target: AnyLinkableHash,
    link_type: String,
    tag: Vec<u8>,
}

fn closed_task() -> Task {
    Task {
        name: "closed sweettest".into(),
        admission: Admission::Closed {
            invites_per_member: 1,
            min_inviter_reputation: Reputation::from_f64(0.5),
        },
        ..task(LEN as u32, Rule::Median, 0, 3, 2)
    }
}

fn proof_bytes(p: &InviteProof) -> SerializedBytes {
    SerializedBytes::try_from(p.clone()).expect("invite proof serializes")
}

async fn invite(
    conductor: &SweetConductor,
    cell: &SweetCell,
    task: &ActionHash,
    invitee: &AgentPubKey,
    standing: Option<ActionHash>,
) -> InviteProof {
    conductor
        .call(
            &cell.zome(ZOME),
            "invite_agent",
            InviteAgent {
                task: task.clone(),
                invitee: invitee.clone(),
                standing,
            },
        )
        .await
}

/// `invite_agent` must fail; its message.
async fn invite_err(
    conductor: &SweetConductor,
    cell: &SweetCell,
    task: &ActionHash,
    invitee: &AgentPubKey,
    standing: Option<ActionHash>,
) -> String {
    match conductor
        .call_fallible::<_, InviteProof>(
            &cell.zome(ZOME),
            "invite_agent",
            InviteAgent {
                task: task.clone(),
                invitee: invitee.clone(),
                standing,
            },
        )
        .await
    {
        Ok(p) => panic!(
            "invite_agent should have failed, but wrote {}",
            p.invite_hash
        ),
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn closed_tasks_admit_only_invited_agents() {
    tokio::time::timeout(std::time::Duration::from_secs(600), scenario())
        .await
        .expect("scenario finishes within 10 minutes");
}

async fn scenario() {
    let (conductors, cells) = adversarial_network(3).await;
    let (alice, bob, carol) = (&cells[0], &cells[1], &cells[2]);
    let (ca, cb, cc) = (&conductors[0], &conductors[1], &conductors[2]);
    let outsider = SweetAgents::one(cc.keystore()).await;

    let task_hash: ActionHash = ca
        .call(&alice.zome(ZOME), "create_task", closed_task())
        .await;
    let open_hash: ActionHash = ca
        .call(
            &alice.zome(ZOME),
            "create_task",
            task(LEN as u32, Rule::Median, 0, 3, 2),
        )
        .await;
    settle(&cells).await;

    // --- No invite: cannot join, cannot write ---
    let join = |invite: Option<ActionHash>| JoinTask {
        task: task_hash.clone(),
        invite,
    };
    assert_rejected(
        &call_err(cc, carol, ZOME, "join_task", join(None)).await,
        "is closed: joining needs an invite (none given",
    );
    assert_rejected(
        &call_err(
            cc,
            carol,
            ADVERSARY,
            "raw_membership",
            Membership {
                task: task_hash.clone(),
                invite: None,
            },
        )
        .await,
        &format!("membership: task {task_hash} is closed: joining needs an invite"),
    );
    let update = vec![0.1f32; LEN];
    let submit_input = SubmitUpdate {
        task: task_hash.clone(),
        round: 0,
        update: f32_bytes(&update),
        samples: 10,
        loss_before: 1.0,
        loss_after: 0.9,
        proof_samples: 5,
    };
    assert_rejected(
        &call_err(cc, carol, ZOME, "submit_update", submit_input.clone()).await,
        &format!(
            "update submission: task {task_hash} is closed and {} cites no membership",
            carol.agent_pubkey()
        ),
    );

    // --- A good invite admits once, and only its invitee ---
    let bob_invite = invite(ca, alice, &task_hash, bob.agent_pubkey(), None).await;
    settle(&cells).await;
    let bob_member: ActionHash = cb
        .call(
            &bob.zome(ZOME),
            "join_task",
            join(Some(bob_invite.invite_hash.clone())),
        )
        .await;
    let reused = Membership {
        task: task_hash.clone(),
        invite: Some(bob_invite.invite_hash.clone()),
    };
    assert_rejected(
        &call_err(cb, bob, ADVERSARY, "raw_membership", reused.clone()).await,
        &format!("membership: the agent already joined task {task_hash} ({bob_member})"),
    );
    assert_rejected(
        &call_err(cc, carol, ADVERSARY, "raw_membership", reused.clone()).await,
        &format!(
            "membership: the invite is bound to {}, not to {}",
            bob.agent_pubkey(),
            carol.agent_pubkey()
        ),
    );

    // --- Forged invites ---
    // Alice's signature copied into an invite Carol writes.
    let forged = Invite {
        invitee: outsider.clone(),
        ..bob_invite.invite.clone()
    };
    assert_rejected(
        &call_err(cc, carol, ADVERSARY, "raw_invite", forged).await,
        &format!(
            "invite: bad signature by {}: signature does not verify",
            carol.agent_pubkey()
        ),
    );
    // A correctly signed invite by someone who is not the task's author and shows no standing.
    assert_rejected(
        &invite_err(cc, carol, &task_hash, &outsider, None).await,
        "is not the task's author, so the invite must cite an aggregate that shows the inviter's reputation",
    );
    assert_rejected(
        &invite_err(ca, alice, &open_hash, &outsider, None).await,
        &format!("invite: task {open_hash} is open, so nobody needs an invite"),
    );
    assert_rejected(
        &invite_err(ca, alice, &task_hash, alice.agent_pubkey(), None).await,
        "invite: an agent cannot invite itself",
    );
    assert_rejected(
        &call_err(
            cb,
            bob,
            ADVERSARY,
            "raw_membership",
            Membership {
                task: open_hash.clone(),
                invite: Some(bob_invite.invite_hash.clone()),
            },
        )
        .await,
        &format!("membership: task {open_hash} is open, so a membership cites no invite"),
    );

    // --- Round 0 of the closed task: the member and the author take part ---
    let bob_sub: Submitted = cb
        .call(&bob.zome(ZOME), "submit_update", submit_input.clone())
        .await;
    let bob_record: UpdateSubmission = cb
        .call(
            &bob.zome(ZOME),
            "get_submission",
            bob_sub.submission.clone(),
        )
        .await;
    assert_eq!(bob_record.membership, Some(bob_member.clone()));
    let _: Submitted = ca
        .call(&alice.zome(ZOME), "submit_update", submit_input.clone())
        .await;
    settle(&cells).await;
    // Carol citing Bob's membership is not a member either.
    let mut stolen = bob_record.clone();
    stolen.signature = cc
        .keystore()
        .sign(carol.agent_pubkey().clone(), stolen.signing_bytes().into())
        .await
        .expect("carol signs")
        .0
        .to_vec();
    assert_rejected(
        &call_err(cc, carol, ADVERSARY, "raw_submission", stolen).await,
        &format!(
            "update submission: {bob_member} is not {}'s membership of task {task_hash}",
            carol.agent_pubkey()
        ),
    );
    let r0 = RoundRef {
        task: task_hash.clone(),
        round: 0,
    };
    let agg0: ActionHash = ca
        .call(&alice.zome(ZOME), "aggregate_round", r0.clone())
        .await;
    settle(&cells).await;

    // --- Evaluations need membership too ---
    let evaluation = ModelEvaluation {
        aggregate: agg0.clone(),
        round: 0,
        loss: 0.5,
        accuracy: 0.8,
        samples: 10,
        membership: None,
    };
    assert_rejected(
        &call_err(cc, carol, ADVERSARY, "raw_evaluation", evaluation.clone()).await,
        &format!(
            "model evaluation: task {task_hash} is closed and {} cites no membership",
            carol.agent_pubkey()
        ),
    );
    assert_rejected(
        &call_err(
            cc,
            carol,
            ADVERSARY,
            "raw_evaluation",
            ModelEvaluation {
                membership: Some(bob_member.clone()),
                ..evaluation.clone()
            },
        )
        .await,
        &format!(
            "model evaluation: {bob_member} is not {}'s membership of task {task_hash}",
            carol.agent_pubkey()
        ),
    );
    let _: ActionHash = cb
        .call(&bob.zome(ZOME), "publish_evaluation", evaluation.clone())
        .await;
    // The task's author is a member without an invite.
    assert_rejected(
        &call_err(ca, alice, ADVERSARY, "raw_membership", reused.clone()).await,
        "membership: the task's author is a member without an invite",
    );

    // --- Members invite with standing, within their quota ---
    assert_rejected(
        &invite_err(cc, carol, &task_hash, &outsider, Some(agg0.clone())).await,
        "invite: the inviter is not in the reputation table after round 0, so it has no standing in the task",
    );
    let dave = SweetAgents::one(cc.keystore()).await;
    let dave_invite = invite(cb, bob, &task_hash, &dave, Some(agg0.clone())).await;
    assert_rejected(
        &invite_err(cb, bob, &task_hash, &outsider, Some(agg0.clone())).await,
        &format!(
            "invite: {} has already written its 1 invites for this task",
            bob.agent_pubkey()
        ),
    );

    // --- Link rules ---
    let bad_link = |base: AnyLinkableHash, target: AnyLinkableHash, link_type: &str| RawLink {
        base,
        target,
        link_type: link_type.into(),
        tag: vec![],
    };
    assert_rejected(
        &call_err(
            cc,
            carol,
            ADVERSARY,
            "raw_link",
            bad_link(
                task_hash.clone().into(),
                bob_member.clone().into(),
                "TaskToMembers",
            ),
        )
        .await,
        "TaskToMembers link: created by",
    );
    assert_rejected(
        &call_err(
            ca,
            alice,
            ADVERSARY,
            "raw_link",
            bad_link(
                carol.agent_pubkey().clone().into(),
                bob_invite.invite_hash.clone().into(),
                "AgentToInvites",
            ),
        )
        .await,
        "AgentToInvites link: the invite is for another agent",
    );

    // --- Invites as membrane proofs ---
    settle(&cells).await;
    let dna = adversarial_dna().await;
    // Dave installs with Bob's invite and joins without naming it.
    let dave_cell = install_for_agent(
        cc,
        &dna,
        "dave",
        dave.clone(),
        Some(proof_bytes(&dave_invite)),
    )
    .await
    .expect("a valid invite installs");
    let dave_member: ActionHash = cc
        .call(&dave_cell.zome(ZOME), "join_task", join(None))
        .await;
    // Bound to Dave: nobody else installs with it.
    let e = install_with_proof(cc, &dna, "erin", Some(proof_bytes(&dave_invite)))
        .await
        .map(|_| ())
        .unwrap_err();
    assert_rejected(&e, "The genesis self-check failed");
    assert_rejected(
        &e,
        &format!("membrane proof: the invite is bound to {dave}, not to"),
    );
    // Forged: Carol signs an invite in Alice's name.
    let frank = SweetAgents::one(cc.keystore()).await;
    let signature = cc
        .keystore()
        .sign(
            carol.agent_pubkey().clone(),
            invite_message(task_hash.get_raw_39(), frank.get_raw_39()).into(),
        )
        .await
        .expect("carol signs");
    let forged_proof = InviteProof {
        invite_hash: bob_invite.invite_hash.clone(),
        inviter: alice.agent_pubkey().clone(),
        invite: Invite {
            task: task_hash.clone(),
            invitee: frank.clone(),
            standing: None,
            signature: signature.0.to_vec(),
        },
    };
    let e = install_for_agent(cc, &dna, "frank", frank, Some(proof_bytes(&forged_proof)))
        .await
        .map(|_| ())
        .unwrap_err();
    assert_rejected(
        &e,
        &format!(
            "membrane proof: invite: bad signature by {}: signature does not verify",
            alice.agent_pubkey()
        ),
    );
    let junk = SerializedBytes::from(UnsafeBytes::from(vec![0x93, 1, 2, 3]));
    let e = install_with_proof(cc, &dna, "junk", Some(junk))
        .await
        .map(|_| ())
        .unwrap_err();
    assert_rejected(&e, "membrane proof is not an invite");
    // Self-signed: an agent cannot invite itself.
    let hank = SweetAgents::one(cc.keystore()).await;
    let signature = cc
        .keystore()
        .sign(
            hank.clone(),
            invite_message(task_hash.get_raw_39(), hank.get_raw_39()).into(),
        )
        .await
        .expect("hank signs");
    let self_proof = InviteProof {
        invite_hash: bob_invite.invite_hash.clone(),
        inviter: hank.clone(),
        invite: Invite {
            task: task_hash.clone(),
            invitee: hank.clone(),
            standing: None,
            signature: signature.0.to_vec(),
        },
    };
    let e = install_for_agent(cc, &dna, "hank", hank, Some(proof_bytes(&self_proof)))
        .await
        .map(|_| ())
        .unwrap_err();
    assert_rejected(&e, "membrane proof: invite: an agent cannot invite itself");
    // Signed by Alice but naming a record that is not the invite: genesis cannot look it
    // up, so the agent installs, but joining with it fails.
    let gina = SweetAgents::one(cc.keystore()).await;
    let gina_invite = invite(ca, alice, &task_hash, &gina, None).await;
    let misplaced = InviteProof {
        invite_hash: task_hash.clone(),
        ..gina_invite.clone()
    };
    let gina_cell = install_for_agent(
        cc,
        &dna,
        "gina",
        gina.clone(),
        Some(proof_bytes(&misplaced)),
    )
    .await
    .expect("genesis cannot see the invite record");
    assert_rejected(
        &call_err(cc, &gina_cell, ZOME, "join_task", join(None)).await,
        &format!("membership: {task_hash} is not an Invite"),
    );

    // The members, as anyone reads them.
    conductors.exchange_peer_info().await;
    let members = eventually(120, || async {
        let members: Vec<MemberInfo> = ca
            .call(&alice.zome(ZOME), "list_members", task_hash.clone())
            .await;
        (members.len() == 2).then_some(members)
    })
    .await;
    let mut expected = vec![
        (bob.agent_pubkey().clone(), bob_member),
        (dave.clone(), dave_member),
    ];
    expected.sort();
    assert_eq!(
        members
            .into_iter()
            .map(|m| (m.agent, m.membership))
            .collect::<Vec<_>>(),
        expected
    );
}
