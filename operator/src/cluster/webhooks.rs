//! The admission webhooks' wiring in Kubernetes mode: the serving certificate from its
//! Secret, `caBundle` patched into the webhook configurations and CRDs, and the HTTPS
//! server with its routes (/convert, /validate, /inject).

use anyhow::Context as _;
use tokio::task::JoinSet;

use super::run::Settings;
use crate::inject;
use crate::webhook::{self, Routes, Tls};

/// Kubernetes' first version with native sidecars on by default (beta, 1.29).
const NATIVE_SIDECARS_SINCE: (u32, u32) = (1, 29);

/// Whether a server version (`major`, `minor` as `/version` gives them: `"1"`, `"29+"`)
/// runs native sidecars by default.
pub fn has_native_sidecars(major: &str, minor: &str) -> bool {
    let number = |s: &str| {
        s.trim_end_matches(|c: char| !c.is_ascii_digit())
            .parse::<u32>()
            .ok()
    };
    match (number(major), number(minor)) {
        (Some(major), Some(minor)) => (major, minor) >= NATIVE_SIDECARS_SINCE,
        _ => false,
    }
}

/// Loads (or makes) the serving certificate, patches `caBundle` where the API server
/// needs it, and serves the webhooks on `settings.webhook`. Returns the bound address.
pub async fn start(
    client: &kube::Client,
    settings: &Settings,
    tasks: &mut JoinSet<()>,
) -> anyhow::Result<std::net::SocketAddr> {
    let config = match &settings.inject_config {
        Some(path) => inject::config::Config::load(path)?,
        None => inject::config::Config::default(),
    };
    let version = client
        .apiserver_version()
        .await
        .context("reading the Kubernetes version")?;
    let native = config
        .sidecar_mode
        .native(has_native_sidecars(&version.major, &version.minor));
    eprintln!(
        "trellis operator: Kubernetes {}.{}: the proxy is injected as {}",
        version.major,
        version.minor,
        if native {
            "a native sidecar"
        } else {
            "a container, after an init container"
        }
    );

    let ns = &settings.namespace;
    let cert = webhook::load_or_create(client.clone(), ns)
        .await
        .context("the webhook serving certificate")?;
    let patched = webhook::patch_all(client.clone(), ns, &cert.ca_pem)
        .await
        .context("injecting the webhook CA (caBundle)")?;
    for skipped in &patched.skipped {
        eprintln!("trellis operator: {skipped}");
    }
    let tls = Tls::new(&cert)?;
    let routes = Routes::webhooks().with("/inject", move |review| {
        inject::admission::review(review, &config, native)
    });
    let listener = crate::grpc::bind(settings.webhook, "the webhooks (--webhook)").await?;
    let addr = listener.local_addr()?;
    tasks.spawn(webhook::serve(listener, tls.clone(), routes));
    tasks.spawn(webhook::keep_fresh(
        client.clone(),
        ns.clone(),
        cert,
        move |new| {
            if let Err(e) = tls.reload(new) {
                eprintln!("trellis operator: the renewed webhook certificate: {e}");
            }
        },
    ));
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_sidecars_are_used_from_kubernetes_1_29() {
        assert!(has_native_sidecars("1", "29"));
        assert!(has_native_sidecars("1", "31+"), "GKE/EKS write 31+");
        assert!(!has_native_sidecars("1", "28"));
        assert!(!has_native_sidecars("", ""));
    }
}
