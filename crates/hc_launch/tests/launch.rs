//! `hc-launch` bad input: a missing or malformed bundle, a UI folder without index.html, a
//! port in use, no `holochain` binary: each one line on stderr, a non-zero exit, and
//! nothing left behind (no conductor started, no working folder).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A PATH folder with stand-ins for `holochain` and `hc` (bad input is caught before
/// either runs), or an empty one.
fn fake_path(with_binaries: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    if with_binaries {
        for name in ["holochain", "hc"] {
            let p = dir.path().join(name);
            std::fs::write(&p, "#!/bin/sh\nexit 99\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    dir
}

/// Runs hc-launch with `args` and PATH = `path`, TMPDIR = a fresh folder that must stay
/// empty; returns stderr after checking the exit and the one line.
fn fails(path: &Path, args: &[&str]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hc-launch"))
        .args(args)
        .env("PATH", path)
        .env("TMPDIR", tmp.path())
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "should fail: {args:?}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let left: Vec<PathBuf> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    stderr
}

#[test]
fn bad_input_is_one_line_and_leaves_nothing() {
    let bins = fake_path(true);
    let files = tempfile::tempdir().unwrap();
    let p = |name: &str| files.path().join(name).to_string_lossy().into_owned();

    let e = fails(bins.path(), &[&p("missing.webhapp")]);
    assert!(e.contains("cannot read"), "{e}");

    std::fs::write(p("bad.webhapp"), b"not a bundle").unwrap();
    let e = fails(bins.path(), &[&p("bad.webhapp")]);
    assert!(e.contains("is not a valid web-hApp bundle"), "{e}");

    std::fs::write(p("bad.happ"), b"not a bundle").unwrap();
    let e = fails(bins.path(), &[&p("bad.happ"), "--ui-path", &p("")]);
    assert!(e.contains("is not a valid hApp bundle"), "{e}");

    std::fs::write(p("x.txt"), b"").unwrap();
    let e = fails(bins.path(), &[&p("x.txt")]);
    assert!(e.contains("neither a .webhapp nor a .happ"), "{e}");

    let e = fails(fake_path(false).path(), &[&p("bad.webhapp")]);
    assert!(e.contains("no `holochain` binary on PATH"), "{e}");

    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let e = fails(bins.path(), &[&p("bad.webhapp"), "--ui-port", &port]);
    assert!(e.contains(&format!("UI port {port} is not free")), "{e}");

    let e = fails(bins.path(), &[&p("bad.webhapp"), "-n", "0"]);
    assert!(e.contains("-n must be at least 1"), "{e}");
}

#[test]
fn a_ui_folder_needs_an_index_page() {
    let happ = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../workdir/mycelix_fl.happ");
    if !happ.exists() {
        panic!("{} is missing: run scripts/pack.sh first", happ.display());
    }
    let empty = tempfile::tempdir().unwrap();
    let e = fails(
        fake_path(true).path(),
        &[
            happ.to_str().unwrap(),
            "--ui-path",
            empty.path().to_str().unwrap(),
        ],
    );
    assert!(e.contains("has no index.html"), "{e}");
    let e = fails(fake_path(true).path(), &[happ.to_str().unwrap()]);
    assert!(e.contains("without a UI: give --ui-path"), "{e}");
}
