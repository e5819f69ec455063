//! The Secret `trellis-webhook-tls` (type `kubernetes.io/tls`: `tls.crt`, `tls.key`,
//! `ca.crt`) in the operator's namespace: read, created when absent, replaced when
//! [`certs::renewal`] says so.
//!
//! Replicas starting together race: a create that meets `409 AlreadyExists` and a
//! replace that meets `409 Conflict` (stale `resourceVersion`) read the Secret again and
//! use what the winner wrote.

use std::collections::BTreeMap;
use std::time::SystemTime;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

use super::certs::{self, CertError, ServingCert};

/// The Secret's name.
pub const SECRET: &str = "trellis-webhook-tls";
/// Label marking what the operator made (Helm does not own the Secret).
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "trellis-operator");

const TLS_CRT: &str = "tls.crt";
const TLS_KEY: &str = "tls.key";
const CA_CRT: &str = "ca.crt";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot {action} the Secret {namespace}/{SECRET}: {source}")]
    Kube {
        action: &'static str,
        namespace: String,
        source: kube::Error,
    },
    #[error(transparent)]
    Cert(#[from] CertError),
    #[error("the Secret {namespace}/{SECRET} another replica wrote cannot be used: {why}")]
    Unusable { namespace: String, why: String },
}

/// The serving certificate of the webhooks in `namespace`: the stored one while it is
/// good, else a new one (stored before it is returned).
pub async fn load_or_create(client: Client, namespace: &str) -> Result<ServingCert, SecretError> {
    load_or_create_at(client, namespace, SystemTime::now()).await
}

pub(super) async fn load_or_create_at(
    client: Client,
    namespace: &str,
    now: SystemTime,
) -> Result<ServingCert, SecretError> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let kube_err = |action| {
        move |source| SecretError::Kube {
            action,
            namespace: namespace.to_owned(),
            source,
        }
    };
    let Some(mut secret) = api.get_opt(SECRET).await.map_err(kube_err("read"))? else {
        let cert = certs::generate(namespace, now)?;
        eprintln!("trellis operator: creating the webhook certificate Secret {namespace}/{SECRET}");
        return match api.create(&PostParams::default(), &new_secret(&cert)).await {
            Ok(_) => Ok(cert),
            Err(e) if is_409(&e) => reread(&api, namespace).await,
            Err(e) => Err(kube_err("create")(e)),
        };
    };
    let stored = read(&secret);
    let why = match &stored {
        Ok(cert) => match certs::renewal(cert, namespace, now) {
            None => return Ok(cert.clone()),
            Some(why) => why,
        },
        Err(why) => certs::Renewal::Unreadable(why.clone()),
    };
    eprintln!(
        "trellis operator: renewing the webhook certificate in Secret {namespace}/{SECRET}: {why}"
    );
    let cert = match &stored {
        Ok(old) => certs::renew(old, namespace, now)?,
        Err(_) => certs::generate(namespace, now)?,
    };
    secret.data = Some(data(&cert));
    match api.replace(SECRET, &PostParams::default(), &secret).await {
        Ok(_) => Ok(cert),
        Err(e) if is_409(&e) => reread(&api, namespace).await,
        Err(e) => Err(kube_err("replace")(e)),
    }
}

/// The Secret another replica just wrote.
async fn reread(api: &Api<Secret>, namespace: &str) -> Result<ServingCert, SecretError> {
    let secret = api.get(SECRET).await.map_err(|source| SecretError::Kube {
        action: "read",
        namespace: namespace.to_owned(),
        source,
    })?;
    read(&secret).map_err(|why| SecretError::Unusable {
        namespace: namespace.to_owned(),
        why,
    })
}

fn is_409(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

fn new_secret(cert: &ServingCert) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(SECRET.to_owned()),
            labels: Some(BTreeMap::from([(
                MANAGED_BY.0.to_owned(),
                MANAGED_BY.1.to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(data(cert)),
        ..Secret::default()
    }
}

fn data(cert: &ServingCert) -> BTreeMap<String, ByteString> {
    let bytes = |pem: &str| ByteString(pem.as_bytes().to_vec());
    BTreeMap::from([
        (CA_CRT.to_owned(), bytes(&cert.ca_pem)),
        (TLS_CRT.to_owned(), bytes(&cert.cert_pem)),
        (TLS_KEY.to_owned(), bytes(&cert.key_pem)),
    ])
}

/// The PEM texts of the Secret, or which key is missing or not text.
fn read(secret: &Secret) -> Result<ServingCert, String> {
    let empty = BTreeMap::new();
    let data = secret.data.as_ref().unwrap_or(&empty);
    let text = |key: &str| -> Result<String, String> {
        let bytes = data.get(key).ok_or_else(|| format!("{key}: missing"))?;
        String::from_utf8(bytes.0.clone()).map_err(|_| format!("{key}: not PEM text"))
    };
    Ok(ServingCert {
        ca_pem: text(CA_CRT)?,
        cert_pem: text(TLS_CRT)?,
        key_pem: text(TLS_KEY)?,
    })
}

#[cfg(test)]
#[path = "secret_tests.rs"]
mod tests;
