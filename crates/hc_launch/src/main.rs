//! `hc-launch`: `hc launch` without Electron. Starts a local network of `hc sandbox`
//! conductors with the app installed and serves its UI once per agent, with that agent's
//! connection details and zome-call signing credentials injected; prints one URL per
//! agent. Ctrl-C or SIGTERM stops everything it started and removes the sandboxes.
//!
//!   hc launch workdir/mycelix_fl.webhapp -n 3
//!   hc launch workdir/mycelix_fl.happ --ui-path ui/dist -n 2 --ui-port 8888

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use fl_node::dashboard::{serve, AgentSession};
use hc_launch::{find_program, read_bundle, SandboxConfig, Sandboxes};

/// Launch a hApp with its UI on a local network of sandbox conductors, one UI per agent.
#[derive(Parser)]
#[command(name = "hc launch", version)]
struct Args {
    /// The .webhapp to launch, or a .happ together with --ui-path.
    bundle: PathBuf,
    /// Number of agents (one conductor each).
    #[arg(short = 'n', long = "num-agents", default_value_t = 2)]
    agents: usize,
    /// First UI port on 127.0.0.1; agent i gets this plus i. 0 picks free ports.
    #[arg(long, default_value_t = 0)]
    ui_port: u16,
    /// A UI folder (with index.html) to serve instead of the bundle's own UI.
    #[arg(long)]
    ui_path: Option<PathBuf>,
    /// Network seed for the installed app.
    #[arg(long)]
    network_seed: Option<String>,
    /// Use this bootstrap server and relay instead of starting one on 127.0.0.1.
    #[arg(long)]
    bootstrap_url: Option<String>,
    /// Installed app id (default: the bundle's file name without extension).
    #[arg(long)]
    app_id: Option<String>,
    /// Open each agent's URL in the system browser.
    #[arg(long)]
    open: bool,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(args) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    if args.agents == 0 {
        bail!("-n must be at least 1");
    }
    let hint = "scripts/tools.sh --sandbox installs the pinned binaries into ~/.cache/mycelix-fl/bin; add it to PATH";
    find_program("holochain", hint)?;
    let hc = find_program("hc", hint)?;
    let app_id = match &args.app_id {
        Some(id) => id.clone(),
        None => args
            .bundle
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("app")
            .to_string(),
    };
    // Every UI port must be free before anything starts.
    let mut held = Vec::new();
    if args.ui_port != 0 {
        for i in 0..args.agents {
            let port = args
                .ui_port
                .checked_add(i as u16)
                .ok_or_else(|| anyhow!("--ui-port {} + {i} is not a port", args.ui_port))?;
            held.push(
                std::net::TcpListener::bind(("127.0.0.1", port))
                    .map_err(|e| anyhow!("UI port {port} is not free: {e}"))?,
            );
        }
    }
    let work = tempfile::Builder::new()
        .prefix("hc-launch-")
        .tempdir()
        .context("creating a working folder")?;
    let (happ, ui) = read_bundle(&args.bundle, args.ui_path.as_deref(), work.path())?;

    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let work_dir = work.path().to_path_buf();
    runtime.block_on(async move {
        let bootstrap = match &args.bootstrap_url {
            Some(url) => {
                println!("bootstrap server and relay: {url}");
                (url.clone(), None)
            }
            None => {
                let srv = tokio::task::spawn_blocking(|| {
                    kitsune2_bootstrap_srv::BootstrapSrv::new(
                        kitsune2_bootstrap_srv::Config::testing(),
                    )
                })
                .await?
                .context("starting the local bootstrap server")?;
                let url = format!("http://{}", srv.listen_addrs()[0]);
                println!("bootstrap server and relay: {url} (in this process)");
                (url, Some(srv))
            }
        };
        let sandbox_dir = work_dir.join("sandboxes");
        std::fs::create_dir_all(&sandbox_dir)?;
        println!("sandboxes: {}", sandbox_dir.display());
        let cfg = SandboxConfig {
            hc: &hc,
            happ: &happ,
            agents: args.agents,
            app_id: &app_id,
            network_seed: args.network_seed.as_deref(),
            bootstrap_url: &bootstrap.0,
            dir: &sandbox_dir,
        };
        let mut sandboxes =
            tokio::task::block_in_place(|| Sandboxes::start(&cfg, |step| println!("{step}")))?;
        drop(held);
        println!("waiting for the conductors to find each other");
        if let Err(e) = fl_node::conductor::await_full_arcs(
            &sandboxes.admin_ports,
            std::time::Duration::from_secs(90),
        )
        .await
        {
            eprintln!("warning: {e:#}; going on (entries may take a gossip round to spread)");
        }
        let mut servers = Vec::new();
        for (i, &admin_port) in sandboxes.admin_ports.iter().enumerate() {
            let session = AgentSession::open(admin_port, &app_id)
                .await
                .with_context(|| format!("preparing agent {i}"))?;
            let port = if args.ui_port == 0 {
                0
            } else {
                args.ui_port + i as u16
            };
            let (addr, server) = serve(ui.clone(), session.script(), port).await?;
            let url = format!("http://{addr}/");
            println!(
                "agent {i}: {url}  ({}, admin port {admin_port}, app port {})",
                session.cell_id.agent_pubkey(),
                session.app_port
            );
            if args.open {
                open_browser(&url);
            }
            servers.push(tokio::spawn(server));
        }
        println!(
            "{} agents running; Ctrl-C stops them and removes the sandboxes",
            args.agents
        );
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        println!("stopping");
        for s in servers {
            s.abort();
        }
        tokio::task::block_in_place(|| sandboxes.stop());
        drop(bootstrap);
        Ok::<_, anyhow::Error>(())
    })?;
    drop(work);
    Ok(())
}

/// Opens `url` with the desktop's opener, where there is one.
fn open_browser(url: &str) {
    for opener in ["xdg-open", "open"] {
        if std::process::Command::new(opener)
            .arg(url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .is_ok()
        {
            return;
        }
    }
    eprintln!("no browser opener found; open {url} yourself");
}
