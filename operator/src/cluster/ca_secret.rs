//! Kubernetes mode keeps the identity CA in the Secret `trellis-identity` (keys `roots.pem`,
//! `issuer.pem`, `issuer.key.pem`, as the local data directory's files), so that every
//! replica and every restart signs with the same CA.
//!
//! ```text
//! start: GET secret --found--> write its keys to <data-dir>/identity (the CA store reads them)
//!                   --404----> generate a CA -> create the secret --409 (another replica
//!                              was first)--> read theirs instead
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

use crate::identity::{CaPem, Layout};

/// The Secret holding the CA.
pub const NAME: &str = "trellis-identity";

const ROOTS: &str = "roots.pem";
const ISSUER: &str = "issuer.pem";
const ISSUER_KEY: &str = "issuer.key.pem";

/// The CA as a Secret's data.
pub fn to_data(pem: &CaPem) -> BTreeMap<String, ByteString> {
    [
        (ROOTS, &pem.roots),
        (ISSUER, &pem.issuer),
        (ISSUER_KEY, &pem.issuer_key),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), ByteString(v.as_bytes().to_vec())))
    .collect()
}

/// The CA from a Secret's data; the error names the missing or unreadable key.
pub fn from_data(data: &BTreeMap<String, ByteString>) -> Result<CaPem, String> {
    let get = |key: &str| {
        let bytes = data
            .get(key)
            .ok_or_else(|| format!("Secret {NAME}: key {key} is missing"))?;
        String::from_utf8(bytes.0.clone())
            .map_err(|_| format!("Secret {NAME}: key {key} is not PEM text"))
    };
    Ok(CaPem {
        roots: get(ROOTS)?,
        issuer: get(ISSUER)?,
        issuer_key: get(ISSUER_KEY)?,
    })
}

/// Makes `<data_dir>/identity` hold the CA of the Secret, creating both when absent.
/// Returns whether this call created the CA.
pub async fn sync_to_dir(
    client: &Client,
    namespace: &str,
    data_dir: &Path,
    trust_domain: &str,
    root_lifetime: Duration,
) -> anyhow::Result<bool> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let layout = Layout::new(data_dir);
    let read = |secret: Secret| -> anyhow::Result<CaPem> {
        from_data(&secret.data.unwrap_or_default()).map_err(anyhow::Error::msg)
    };
    if let Some(secret) = api.get_opt(NAME).await.context("reading the CA Secret")? {
        layout.write(&read(secret)?)?;
        return Ok(false);
    }
    let pem = CaPem::generate(trust_domain, root_lifetime, SystemTime::now())?;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(NAME.into()),
            namespace: Some(namespace.into()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_owned(),
                "trellis-operator".to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        data: Some(to_data(&pem)),
        ..Secret::default()
    };
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => {
            layout.write(&pem)?;
            Ok(true)
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let theirs = api.get(NAME).await.context("reading the CA Secret")?;
            layout.write(&read(theirs)?)?;
            Ok(false)
        }
        Err(e) => Err(e).context(format!(
            "creating the CA Secret {namespace}/{NAME} (is the operator allowed to create it?)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_round_trips_through_a_secret_s_data_and_a_missing_key_is_named() {
        let pem = CaPem {
            roots: "R".into(),
            issuer: "I".into(),
            issuer_key: "K".into(),
        };
        let mut data = to_data(&pem);
        assert_eq!(from_data(&data), Ok(pem));
        data.remove(ISSUER_KEY);
        assert_eq!(
            from_data(&data),
            Err("Secret trellis-identity: key issuer.key.pem is missing".into())
        );
    }
}
