//! Autonomous participants as separate OS processes: a bootstrap server, four `mycelix-fl
//! peer` processes, each with its own conductor, data directory, passphrase file and CSV
//! table, one of them attacking. The first creates the task from a task file. Nobody
//! steps the rounds: each peer follows the task's schedule by itself. One honest peer is
//! killed with SIGKILL after the first round that included its update and started again
//! with the same data directory; it takes part in the next round. Needs `scripts/pack.sh`
//! to have run.
//!
//! Where the test may create network namespaces (as root, with `ip`), every process runs
//! on a host of its own: a namespace per process, joined by a bridge in one more
//! namespace, with addresses in 10.231.0.0/24. Nothing is added to the machine's own
//! network namespace, and the namespaces are deleted when the test ends. Elsewhere every
//! process runs on this host's loopback. The test says which at its start.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fl_node::taskfile::TaskFile;

const BIN: &str = env!("CARGO_BIN_EXE_mycelix-fl");
const ROUNDS: u32 = 4;
const SEED: &str = "peers-test";

/// Where the test's processes run.
enum Hosts {
    /// Every process on this host's loopback.
    Loopback,
    /// Process `k` in namespace `{prefix}-{k}` at [`Hosts::ip`]; the bridge in
    /// `{prefix}-hub`.
    Namespaces { prefix: String, count: usize },
}

impl Hosts {
    /// `count` hosts in network namespaces, or the reason they cannot be made (then
    /// nothing is left behind).
    fn namespaces(count: usize) -> Result<Hosts, String> {
        let prefix = format!("mfl{}", std::process::id());
        // From here on, dropping `hosts` deletes whatever was made.
        let hosts = Hosts::Namespaces {
            prefix: prefix.clone(),
            count,
        };
        let hub = format!("{prefix}-hub");
        let mut steps: Vec<Vec<String>> = vec![
            vec!["netns".into(), "add".into(), hub.clone()],
            ip_in(&hub, "link add br0 type bridge"),
            ip_in(&hub, "link set br0 up"),
        ];
        for k in 0..count {
            let ns = format!("{prefix}-{k}");
            steps.push(vec!["netns".into(), "add".into(), ns.clone()]);
            steps.push(ip_in(
                &hub,
                &format!("link add v{k} type veth peer name eth0 netns {ns}"),
            ));
            steps.push(ip_in(&hub, &format!("link set v{k} master br0")));
            steps.push(ip_in(&hub, &format!("link set v{k} up")));
            steps.push(ip_in(&ns, "link set lo up"));
            steps.push(ip_in(
                &ns,
                &format!("addr add {}/24 dev eth0", Hosts::ip(k)),
            ));
            steps.push(ip_in(&ns, "link set eth0 up"));
        }
        for step in steps {
            let out = Command::new("ip")
                .args(&step)
                .output()
                .map_err(|e| format!("cannot run ip: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "ip {}: {}",
                    step.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
        Ok(hosts)
    }

    /// Host `k`'s address in the namespaces.
    fn ip(k: usize) -> String {
        format!("10.231.0.{}", k + 2)
    }

    /// Host `k`'s address as the other hosts reach it.
    fn address(&self, k: usize) -> String {
        match self {
            Hosts::Loopback => "127.0.0.1".into(),
            Hosts::Namespaces { .. } => Hosts::ip(k),
        }
    }

    /// `mycelix-fl` on host `k`.
    fn command(&self, k: usize) -> Command {
        match self {
            Hosts::Loopback => Command::new(BIN),
            Hosts::Namespaces { prefix, .. } => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &format!("{prefix}-{k}"), BIN]);
                c
            }
        }
    }
}

/// `ip -n ns` with `args` split on spaces.
fn ip_in(ns: &str, args: &str) -> Vec<String> {
    ["-n", ns]
        .into_iter()
        .chain(args.split(' '))
        .map(String::from)
        .collect()
}

impl Drop for Hosts {
    fn drop(&mut self) {
        if let Hosts::Namespaces { prefix, count } = self {
            // Deleting a namespace deletes the links in it.
            for ns in (0..*count)
                .map(|k| format!("{prefix}-{k}"))
                .chain([format!("{prefix}-hub")])
            {
                let _ = Command::new("ip")
                    .args(["netns", "del", &ns])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

/// A running process whose stdout lines arrive on a channel.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    fn spawn(mut command: Command, args: &[&str]) -> Proc {
        let mut child = command
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("mycelix-fl starts");
        let out = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc { child, lines }
    }

    /// The next line within `timeout`; `Err` once the process's output has ended.
    fn line(&self, timeout: Duration) -> Result<Option<String>, ()> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => Ok(Some(line)),
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(()),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn conductor_args(dir: &Path, k: usize, url: &str) -> Vec<String> {
    vec![
        "--data-dir".into(),
        dir.join(format!("peer-{k}")).display().to_string(),
        "--passphrase-file".into(),
        dir.join(format!("pass-{k}")).display().to_string(),
        "--bootstrap-url".into(),
        url.into(),
        "--network-seed".into(),
        SEED.into(),
    ]
}

fn peer_args(dir: &Path, k: usize, url: &str, task: &str, attack: bool) -> Vec<String> {
    let mut a = vec!["peer".to_string()];
    a.extend(conductor_args(dir, k, url));
    a.extend([
        "--task".into(),
        task.into(),
        "--data".into(),
        dir.join("data")
            .join(format!("peer-{k}.csv"))
            .display()
            .to_string(),
        "--rounds".into(),
        ROUNDS.to_string(),
        "--json".into(),
        "--seed".into(),
        k.to_string(),
    ]);
    if attack {
        a.extend(["--attack".into(), "sign_flip".into()]);
    }
    a
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Reads peer `k`'s JSON round lines until `until` says stop, its output ends or the
/// deadline passes; every line is echoed.
fn rounds_of(
    k: usize,
    p: &Proc,
    deadline: Instant,
    mut until: impl FnMut(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    while Instant::now() < deadline {
        let line = match p.line(Duration::from_secs(1)) {
            Ok(Some(line)) => line,
            Ok(None) => continue,
            Err(()) => break,
        };
        eprintln!("peer {k}: {line}");
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let stop = until(&v);
        out.push(v);
        if stop {
            break;
        }
    }
    out
}

#[test]
fn four_peer_processes_close_rounds_by_themselves_and_a_killed_peer_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for k in 0..4 {
        std::fs::write(
            d.join(format!("pass-{k}")),
            format!("passphrase of peer {k}\n"),
        )
        .unwrap();
    }
    let data: PathBuf = d.join("data");
    let split = Command::new(BIN)
        .args(["split", "--dataset", "digits", "--peers", "4", "--out"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        split.status.success(),
        "{}",
        String::from_utf8_lossy(&split.stderr)
    );

    // Host 0 serves the bootstrap server and relay; peer k runs on host k + 1.
    let hosts = Hosts::namespaces(5).unwrap_or_else(|why| {
        eprintln!("every process on the loopback (no network namespaces: {why})");
        Hosts::Loopback
    });
    if let Hosts::Namespaces { prefix, .. } = &hosts {
        eprintln!(
            "each process on a host of its own: network namespaces {prefix}-0..4 on a bridge"
        );
    }
    let host = |k: usize| hosts.command(k + 1);
    let bootstrap = Proc::spawn(
        hosts.command(0),
        &["bootstrap", "--listen", &format!("{}:0", hosts.address(0))],
    );
    let url = bootstrap
        .line(Duration::from_secs(30))
        .ok()
        .flatten()
        .expect("bootstrap URL");
    assert!(
        url.starts_with(&format!("http://{}:", hosts.address(0))),
        "{url}"
    );
    eprintln!("bootstrap server and relay: {url}");

    // The task: digits, median with f = 1, a committee of 3. Round 0 opens when the task
    // is written, and fresh conductors take a minute or two to start on a small machine,
    // so the submission window is long; rounds whose evidence is complete close without
    // waiting for it.
    let mut file = TaskFile::for_builtin("digits").unwrap();
    file.round.committee = 3;
    file.round.submit_ms = 300_000;
    file.round.vote_ms = 120_000;
    file.round.slot_ms = 10_000;
    let spec = d.join("task.toml");
    std::fs::write(&spec, toml::to_string(&file).unwrap()).unwrap();
    let mut create = vec!["task".to_string(), "create".into()];
    create.extend(conductor_args(d, 0, &url));
    create.extend(["--spec".into(), spec.display().to_string()]);
    let out = host(0).args(refs(&create)).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let task = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(task.starts_with("uhCkk"), "{task}");

    // Peer 0 wrote the task; peer 3 attacks.
    let mut peers: Vec<Proc> = (0..4)
        .map(|k| Proc::spawn(host(k), &refs(&peer_args(d, k, &url, &task, k == 3))))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(900);

    // Peer 2 is killed once it has seen a round close with its own update in it, so that
    // the next round expects it, and started again. (Round 0 waits for the members its
    // aggregator can see; a late member's update may miss it, and then the rounds after
    // it do not wait for that member.)
    let before = rounds_of(2, &peers[2], deadline, |v| !v["verdict"].is_null());
    let killed_after = before.last().and_then(|v| v["round"].as_u64());
    assert!(
        killed_after.is_some_and(|r| r + 1 < u64::from(ROUNDS)),
        "peer 2's update was in no round before the last: {before:?}"
    );
    peers[2].child.kill().unwrap();
    peers[2].child.wait().unwrap();
    peers[2] = Proc::spawn(host(2), &refs(&peer_args(d, 2, &url, &task, false)));

    let last = ROUNDS - 1;
    let mut lines: Vec<Vec<serde_json::Value>> = Vec::new();
    for (k, p) in peers.iter().enumerate() {
        lines.push(rounds_of(k, p, deadline, |v| v["round"] == last));
    }
    for (k, l) in lines.iter().enumerate() {
        assert_eq!(
            l.last().map(|v| v["round"].clone()),
            Some(last.into()),
            "peer {k} did not see round {last} close: {l:?}"
        );
    }
    // Every round after the first has a committee: the attacker's update is excluded.
    let attacker = &lines[3];
    for v in attacker.iter().filter(|v| v["round"].as_u64() >= Some(1)) {
        assert!(
            v["verdict"]
                .as_str()
                .is_some_and(|s| s.starts_with("excluded")),
            "the attacker was not excluded: {v}"
        );
    }
    // The restarted peer took part in the last round, and its update was included.
    let resumed = lines[2].last().unwrap();
    assert_eq!(resumed["submitted"], true, "{resumed}");
    assert_eq!(resumed["verdict"], "included", "{resumed}");
    // Honest peers' updates were included, and the model learned.
    for k in [0, 1] {
        let v = lines[k].last().unwrap();
        assert_eq!(v["verdict"], "included", "peer {k}: {v}");
        assert!(v["accuracy"].as_f64().unwrap() > 0.5, "peer {k}: {v}");
    }
    for mut p in peers {
        let status = p.child.wait().unwrap();
        assert!(status.success(), "a peer exited with {status}");
    }
    drop(bootstrap);
    drop(hosts);
}
