//! The remote backend's client path: conductors reached only through admin and app
//! websockets (holochain_client), here four embedded conductors with admin ports opened,
//! each an autonomous participant, play a full round. Needs `scripts/pack.sh` to have run.

use federated_learning_integrity::{Admission, RoundSchedule};
use fl_core::aggregate::Rule;
use fl_core::RoundParams;
use fl_learn::attacks::Attack;
use fl_learn::data::builtin;
use fl_learn::model::Model;
use fl_learn::partition::Scheme;
use fl_learn::train::Sgd;
use fl_node::conductor::{connect_remote, default_happ, Client, EmbeddedNetwork, APP_ID};
use fl_node::local::run_peers;
use fl_node::sim::{Experiment, Protocol, Shards};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_over_websockets_excludes_the_attacker() {
    let network = EmbeddedNetwork::start(4, &default_happ(), |_| {})
        .await
        .expect("conductors start");
    let ports = network.open_admin_ports().await.expect("admin ports");
    let clients = connect_remote(&ports, APP_ID)
        .await
        .expect("clients connect");
    assert!(clients.iter().all(|c| matches!(c, Client::Remote { .. })));
    // The remote clients are the embedded conductors' own agents.
    for (remote, local) in clients.iter().zip(&network.clients) {
        assert_eq!(remote.agent(), local.agent());
    }
    let (mut train, mut test) = builtin("digits").unwrap().split(0.2, 1);
    let preprocess = train.standardize(&mut [&mut test]);
    let exp = Experiment {
        peers: 4,
        byzantine: 1,
        attack: Attack::SignFlip { scale: 4.0 },
        round: RoundParams::new(Rule::Median, 1),
        committee_size: 4,
        rounds: 1,
        scheme: Scheme::Iid,
        model: Model::LogReg {
            inputs: 64,
            classes: 10,
        },
        sgd: Sgd::default(),
        preprocess,
        validation_fraction: 0.2,
        seed: 3,
        admission: Admission::CLOSED,
        protocol: Protocol::LocalTraining,
        shards: Shards::AllPeers,
        evaluate_every: 1,
    };
    let schedule = RoundSchedule {
        submit_ms: 60_000,
        vote_ms: 30_000,
        slot_ms: 10_000,
    };
    let reports = run_peers(
        &exp,
        clients,
        &train,
        &test,
        schedule,
        None,
        |_| {},
        |_, _| {},
    )
    .await
    .expect("the round closes")
    .reports;
    network.shutdown().await;
    assert_eq!(reports.len(), 1);
    assert!(
        reports[0].excluded.iter().any(|(p, _)| *p == 0),
        "{reports:?}"
    );
    assert_eq!(reports[0].fpr, 0.0, "{reports:?}");
}
