//! Serving the dashboard (`ui/dist`) for one agent of a running conductor.
//!
//! [`AgentSession::open`] does through the conductor's admin interface what a launcher
//! does: attaches an app interface, issues an app token and authorises zome-call signing
//! credentials. [`serve`] then serves the built UI on 127.0.0.1 with those details
//! injected into `index.html` as the launcher environment that `@holochain/client`
//! reads (`window.__HC_LAUNCHER_ENV__`) plus the signing credentials
//! (`window.__MYCELIX_FL_SIGNING__`), so the page connects and signs on its own.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use axum::body::Body;
use axum::http::{header, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use holochain::prelude::CellId;

use crate::conductor::AppAccess;

/// What a page needs to act as one agent: where its app interface is, a token for it, and
/// credentials to sign zome calls with.
#[derive(Debug, Clone)]
pub struct AgentSession {
    /// The app interface's port on 127.0.0.1.
    pub app_port: u16,
    /// The installed app's id.
    pub app_id: String,
    /// A reusable app authentication token.
    pub token: Vec<u8>,
    /// The app's cell.
    pub cell_id: CellId,
    /// Cap secret of the signing grant (64 bytes).
    pub cap_secret: Vec<u8>,
    /// Ed25519 seed of the signing key (32 bytes).
    pub signing_seed: Vec<u8>,
    /// Ed25519 public key of the signing key (32 bytes).
    pub signing_public: Vec<u8>,
    /// The signing key as a Holochain agent key (39 bytes).
    pub signing_agent: Vec<u8>,
}

impl AgentSession {
    /// Prepares a session for `app_id` on the conductor whose admin interface listens on
    /// `admin_port` (127.0.0.1).
    pub async fn open(admin_port: u16, app_id: &str) -> Result<Self> {
        let access = AppAccess::open(admin_port, app_id).await?;
        let keypair = &access.credentials.keypair;
        Ok(AgentSession {
            app_port: access.app_port,
            app_id: app_id.to_string(),
            token: access.token,
            cap_secret: access.credentials.cap_secret.as_ref().to_vec(),
            signing_seed: keypair.to_bytes().to_vec(),
            signing_public: keypair.verifying_key().to_bytes().to_vec(),
            signing_agent: access.credentials.signing_agent_key.get_raw_39().to_vec(),
            cell_id: access.cell_id,
        })
    }

    /// The `<script>` that gives the page this session: the launcher environment
    /// `@holochain/client` reads and the signing credentials the dashboard installs.
    pub fn script(&self) -> String {
        let env = serde_json::json!({
            "APP_INTERFACE_PORT": self.app_port,
            "INSTALLED_APP_ID": self.app_id,
            "APP_INTERFACE_TOKEN": self.token,
        });
        let signing = serde_json::json!({
            "dnaHash": self.cell_id.dna_hash().get_raw_39(),
            "agentPubKey": self.cell_id.agent_pubkey().get_raw_39(),
            "capSecret": self.cap_secret,
            "seed": self.signing_seed,
            "publicKey": self.signing_public,
            "signingKey": self.signing_agent,
        });
        format!(
            "<script>window.__HC_LAUNCHER_ENV__ = {env};\nwindow.__MYCELIX_FL_SIGNING__ = {signing};</script>"
        )
    }
}

/// A UI folder checked to hold a built page.
#[derive(Debug, Clone)]
pub struct UiDir(PathBuf);

impl UiDir {
    /// `path` must be a folder with an `index.html`.
    pub fn new(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        if !path.join("index.html").is_file() {
            bail!(
                "{} has no index.html: build the UI first (cd ui && npm ci && npm run build)",
                path.display()
            );
        }
        Ok(UiDir(path))
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

/// Binds 127.0.0.1:`port` (0 picks a free one) and serves `ui` with `script` injected into
/// its index page. Returns the bound address and the server's future.
pub async fn serve(
    ui: UiDir,
    script: String,
    port: u16,
) -> Result<(
    SocketAddr,
    impl std::future::Future<Output = std::io::Result<()>>,
)> {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))
        .await
        .with_context(|| format!("cannot serve the dashboard on 127.0.0.1:{port}"))?;
    let addr = listener.local_addr()?;
    let router = Router::new().fallback(move |uri: Uri| {
        let ui = ui.clone();
        let script = script.clone();
        async move { respond(&ui, &script, uri.path()).await }
    });
    Ok((addr, async move { axum::serve(listener, router).await }))
}

async fn respond(ui: &UiDir, script: &str, path: &str) -> Response {
    let relative = path.trim_start_matches('/');
    let relative = if relative.is_empty() {
        "index.html"
    } else {
        relative
    };
    let Some(file) = resolve(ui.path(), relative) else {
        return status(StatusCode::NOT_FOUND, "not found");
    };
    let Ok(bytes) = tokio::fs::read(&file).await else {
        return status(StatusCode::NOT_FOUND, "not found");
    };
    let is_index = relative == "index.html";
    let body = if is_index {
        inject(&String::from_utf8_lossy(&bytes), script).into_bytes()
    } else {
        bytes
    };
    Response::builder()
        .header(header::CONTENT_TYPE, content_type(&file))
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from(body))
        .unwrap_or_else(|_| status(StatusCode::INTERNAL_SERVER_ERROR, "response"))
}

fn status(code: StatusCode, text: &'static str) -> Response {
    let mut r = Response::new(Body::from(text));
    *r.status_mut() = code;
    r
}

/// `relative` inside `root`, refusing anything that would climb out of it.
fn resolve(root: &Path, relative: &str) -> Option<PathBuf> {
    let rel = Path::new(relative);
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    let full = root.join(rel);
    full.is_file().then_some(full)
}

/// Puts `script` first in `<head>` so it runs before the page's modules.
fn inject(html: &str, script: &str) -> String {
    match html.find("<head>") {
        Some(i) => format!("{}{script}{}", &html[..i + 6], &html[i + 6..]),
        None => format!("{script}{html}"),
    }
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "json" => "application/json",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cannot_leave_the_ui_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), "<html><head></head></html>").unwrap();
        assert!(resolve(dir.path(), "index.html").is_some());
        assert!(resolve(dir.path(), "../etc/passwd").is_none());
        assert!(resolve(dir.path(), "/etc/passwd").is_none());
        assert!(resolve(dir.path(), "missing.js").is_none());
    }

    #[test]
    fn the_script_goes_first_in_head() {
        assert_eq!(
            inject(
                "<html><head><title>x</title></head></html>",
                "<script>1</script>"
            ),
            "<html><head><script>1</script><title>x</title></head></html>"
        );
        assert_eq!(inject("<p>no head</p>", "<s/>"), "<s/><p>no head</p>");
    }

    #[test]
    fn a_folder_without_index_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = UiDir::new(dir.path()).unwrap_err().to_string();
        assert!(err.contains("has no index.html"), "{err}");
    }
}
