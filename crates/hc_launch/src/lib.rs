//! What `hc launch` does (the `hc-launch` binary): a local network of `hc sandbox`
//! conductors with an app installed, and the app's UI served once per agent.
//!
//! [`read_bundle`] takes a `.webhapp` (hApp and UI in one) or a `.happ` with a UI folder;
//! [`Sandboxes::start`] generates and runs the conductors on a bootstrap server and relay
//! on 127.0.0.1; [`Sandboxes::stop`] (also run on drop) stops every process they started
//! and removes their folders.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use fl_node::dashboard::UiDir;

/// A program on `PATH`, or a one-line error saying how to get it.
pub fn find_program(name: &str, hint: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| anyhow!("no `{name}` binary on PATH ({hint})"))
}

/// Reads the bundle to launch into `work`: a `.webhapp` gives its hApp and UI (unzipped
/// to `work/ui`); a `.happ` needs `ui_path`, a folder with an `index.html`. Returns the
/// `.happ` to install and the UI folder.
pub fn read_bundle(bundle: &Path, ui_path: Option<&Path>, work: &Path) -> Result<(PathBuf, UiDir)> {
    let bytes =
        std::fs::read(bundle).with_context(|| format!("cannot read {}", bundle.display()))?;
    let name = bundle.display();
    let is_webhapp = bundle.extension().is_some_and(|e| e == "webhapp");
    if !is_webhapp {
        if bundle.extension().is_none_or(|e| e != "happ") {
            bail!("{name} is neither a .webhapp nor a .happ");
        }
        // Checks that it is a bundle before any conductor is started.
        holochain::prelude::AppBundle::unpack(&bytes[..])
            .map_err(|e| anyhow!("{name} is not a valid hApp bundle: {e}"))?;
        let ui = ui_path.ok_or_else(|| {
            anyhow!("{name} is a .happ without a UI: give --ui-path (a folder with index.html) or launch the .webhapp")
        })?;
        return Ok((bundle.to_path_buf(), UiDir::new(ui)?));
    }
    let web = holochain_types::web_app::WebAppBundle::unpack(&bytes[..])
        .map_err(|e| anyhow!("{name} is not a valid web-hApp bundle: {e}"))?;
    let manifest = web.manifest();
    let happ_bytes = web
        .get_resource(&manifest.happ_bundle_location())
        .ok_or_else(|| anyhow!("{name} holds no hApp"))?;
    holochain::prelude::AppBundle::unpack(happ_bytes.as_ref())
        .map_err(|e| anyhow!("the hApp inside {name} is not valid: {e}"))?;
    let happ = work.join("app.happ");
    std::fs::write(&happ, happ_bytes.as_ref())?;
    let ui = match ui_path {
        Some(dir) => UiDir::new(dir)?,
        None => {
            let zip = web
                .get_resource(&manifest.web_ui_location())
                .ok_or_else(|| anyhow!("{name} holds no UI"))?;
            let dir = work.join("ui");
            zip::ZipArchive::new(std::io::Cursor::new(zip.as_ref()))
                .and_then(|mut z| z.extract(&dir))
                .map_err(|e| anyhow!("the UI zip inside {name} cannot be unpacked: {e}"))?;
            UiDir::new(&dir).map_err(|_| anyhow!("the UI inside {name} has no index.html"))?
        }
    };
    Ok((happ, ui))
}

/// Running `hc sandbox` conductors.
pub struct Sandboxes {
    dir: PathBuf,
    hc: PathBuf,
    run: Option<Child>,
    /// Each conductor's admin port on 127.0.0.1, in sandbox order.
    pub admin_ports: Vec<u16>,
}

/// How to generate the sandboxes.
pub struct SandboxConfig<'a> {
    /// The `hc` binary.
    pub hc: &'a Path,
    /// The hApp to install.
    pub happ: &'a Path,
    /// Number of conductors.
    pub agents: usize,
    /// Installed app id.
    pub app_id: &'a str,
    /// Network seed (a private network per launch when `None`... as hc chooses).
    pub network_seed: Option<&'a str>,
    /// Bootstrap server and relay URL.
    pub bootstrap_url: &'a str,
    /// Folder for the sandboxes (created by the caller, removed by [`Sandboxes::stop`]).
    pub dir: &'a Path,
}

impl Sandboxes {
    /// Generates `agents` sandboxes with the app installed and runs them; returns once
    /// every conductor's admin port is known.
    pub fn start(cfg: &SandboxConfig<'_>, mut progress: impl FnMut(&str)) -> Result<Self> {
        let mut sandboxes = Sandboxes {
            dir: cfg.dir.to_path_buf(),
            hc: cfg.hc.to_path_buf(),
            run: None,
            admin_ports: Vec::new(),
        };
        let mut generate = Command::new(cfg.hc);
        generate
            .current_dir(cfg.dir)
            .args(["sandbox", "--piped", "generate", "--in-process-lair"])
            .arg("-n")
            .arg(cfg.agents.to_string())
            .arg("--app-id")
            .arg(cfg.app_id)
            .arg("--root")
            .arg(cfg.dir);
        if let Some(seed) = cfg.network_seed {
            generate.arg("--network-seed").arg(seed);
        }
        generate.arg(cfg.happ).args([
            "network",
            "--bootstrap",
            cfg.bootstrap_url,
            "quic",
            cfg.bootstrap_url,
        ]);
        progress(&format!("generating {} sandbox conductors", cfg.agents));
        let out = piped_pass(&mut generate, true)?.wait_with_output()?;
        if !out.status.success() {
            let text = String::from_utf8_lossy(&out.stderr);
            let last = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            bail!("hc sandbox generate failed: {last}");
        }
        let mut run = Command::new(cfg.hc);
        run.current_dir(cfg.dir)
            .args(["sandbox", "--piped", "run", "--all"]);
        std::os::unix::process::CommandExt::process_group(&mut run, 0);
        // The conductors log a lot: everything goes to a file, or a full pipe would stall
        // them. Standard output is read for the admin ports and copied there too.
        let log_path = cfg.dir.join("hc-sandbox-run.log");
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        run.stderr(log.try_clone()?);
        let mut child = piped_pass(&mut run, false)?;
        let stdout = child
            .stdout
            .take()
            .context("hc sandbox run has no output")?;
        sandboxes.run = Some(child);
        progress("starting the conductors");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::Write;
            let mut log = log;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = writeln!(log, "{line}");
                if let Some(i) = line.find("\"admin_port\":") {
                    let digits: String = line[i + 13..]
                        .chars()
                        .take_while(|c| c.is_ascii_digit())
                        .collect();
                    if let Ok(port) = digits.parse::<u16>() {
                        // Keep draining after the receiver is gone.
                        let _ = tx.send(port);
                    }
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(300);
        while sandboxes.admin_ports.len() < cfg.agents {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(port) => sandboxes.admin_ports.push(port),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(status) = sandboxes
                        .run
                        .as_mut()
                        .and_then(|c| c.try_wait().ok().flatten())
                    {
                        bail!("hc sandbox run exited ({status}) before every conductor started");
                    }
                    if Instant::now() > deadline {
                        bail!("the conductors did not start within 300 s");
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    bail!("hc sandbox run stopped before every conductor started")
                }
            }
        }
        Ok(sandboxes)
    }

    /// Stops `hc sandbox run` and every conductor it started, then removes the sandboxes.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.run.take() {
            // SAFETY: kill(2) with a process group id we created; no memory is involved.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        // Conductors run in processes of their own; their command lines name the folder.
        stop_processes_naming(&self.dir);
        let _ = Command::new(&self.hc)
            .current_dir(&self.dir)
            .args(["sandbox", "clean"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Sandboxes {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Spawns `cmd` with stdin answering the lair passphrase prompt and stdout piped (and
/// stderr, when `pipe_stderr`).
fn piped_pass(cmd: &mut Command, pipe_stderr: bool) -> Result<Child> {
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
    if pipe_stderr {
        cmd.stderr(Stdio::piped());
    }
    let mut child = cmd.spawn().context("cannot start hc")?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        let _ = stdin.write_all(b"pass\n");
    }
    Ok(child)
}

/// Processes whose command line mentions `needle` (Linux `/proc`).
pub fn processes_naming(needle: &Path) -> Vec<i32> {
    let needle = needle.to_string_lossy().into_owned();
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(&needle)
                })
                .unwrap_or(false)
        })
        .collect()
}

/// SIGTERM, then after up to 5 s SIGKILL, to every process naming `dir`.
fn stop_processes_naming(dir: &Path) {
    let signal_all = |sig| {
        for pid in processes_naming(dir) {
            // SAFETY: kill(2) on a pid read from /proc; no memory is involved.
            unsafe { libc::kill(pid, sig) };
        }
    };
    signal_all(libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && !processes_naming(dir).is_empty() {
        std::thread::sleep(Duration::from_millis(100));
    }
    signal_all(libc::SIGKILL);
}
