//! The SMI and Trellis kinds the operator reads from the API server, and which version of
//! each it watches (pure, but for [`discover`]).
//!
//! The watched version is the newest one Trellis serves that the installed CRD serves too:
//! the hub with Trellis' own CRDs, an older version when another mesh installed older SMI
//! CRDs. Whether that version has a `status` subresource decides how problems are
//! reported: status conditions, or Events only.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Api, Client};

/// One kind Trellis reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kind {
    pub group: &'static str,
    pub kind: &'static str,
    pub plural: String,
    pub namespaced: bool,
    /// Served by Trellis, newest first.
    pub versions: &'static [&'static str],
}

impl Kind {
    /// `trafficsplits.split.smi-spec.io`.
    pub fn crd_name(&self) -> String {
        format!("{}.{}", self.plural, self.group)
    }
}

/// Every kind of `smi_crds::dynamic::SERVED`, with its plural and scope from the CRDs
/// Trellis generates.
pub fn all() -> Vec<Kind> {
    let crds = smi_crds::crdgen::all();
    smi_crds::dynamic::SERVED
        .iter()
        .map(|(group, kind, versions)| {
            let crd = crds
                .iter()
                .find(|c| c.spec.group == *group && c.spec.names.kind == *kind)
                .expect("every served kind has a generated CRD");
            Kind {
                group,
                kind,
                plural: crd.spec.names.plural.clone(),
                namespaced: crd.spec.scope == "Namespaced",
                versions,
            }
        })
        .collect()
}

/// A kind as installed in the cluster: what to watch and how to report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Installed {
    pub kind: Kind,
    pub version: &'static str,
    /// The watched version has a `status` subresource (else problems go to Events only).
    pub status: bool,
}

impl Installed {
    pub fn api_resource(&self) -> ApiResource {
        let gvk = GroupVersionKind::gvk(self.kind.group, self.version, self.kind.kind);
        ApiResource::from_gvk_with_plural(&gvk, &self.kind.plural)
    }

    pub fn api_version(&self) -> String {
        format!("{}/{}", self.kind.group, self.version)
    }
}

/// Why a kind is not watched.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotWatched {
    #[error(
        "CRD {0} is not installed: its resources are not read (install the chart's CRDs: charts/trellis/crds)"
    )]
    Missing(String),
    #[error(
        "CRD {crd} serves {installed}, none of which Trellis reads ({ours}): its resources are not read"
    )]
    NoCommonVersion {
        crd: String,
        installed: String,
        ours: String,
    },
}

/// The newest version of `kind` that both Trellis and the installed CRD serve.
pub fn pick(kind: &Kind, crd: &CustomResourceDefinition) -> Result<Installed, NotWatched> {
    let served: Vec<_> = crd.spec.versions.iter().filter(|v| v.served).collect();
    kind.versions
        .iter()
        .find_map(|ours| {
            let version = served.iter().find(|v| v.name == *ours)?;
            Some(Installed {
                kind: kind.clone(),
                version: ours,
                status: version
                    .subresources
                    .as_ref()
                    .is_some_and(|s| s.status.is_some()),
            })
        })
        .ok_or_else(|| NotWatched::NoCommonVersion {
            crd: kind.crd_name(),
            installed: served
                .iter()
                .map(|v| v.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            ours: kind.versions.join(", "),
        })
}

/// TrafficSplit as Trellis' own CRD installs it (tests).
#[cfg(test)]
pub fn split_hub() -> Installed {
    Installed {
        kind: all()
            .into_iter()
            .find(|k| k.kind == "TrafficSplit")
            .unwrap(),
        version: "v1alpha4",
        status: true,
    }
}

/// Reads the installed CRDs: the kinds to watch, and why the others are not.
pub async fn discover(client: &Client) -> kube::Result<(Vec<Installed>, Vec<NotWatched>)> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut installed = Vec::new();
    let mut skipped = Vec::new();
    for kind in all() {
        match api.get_opt(&kind.crd_name()).await? {
            Some(crd) => match pick(&kind, &crd) {
                Ok(i) => installed.push(i),
                Err(e) => skipped.push(e),
            },
            None => skipped.push(NotWatched::Missing(kind.crd_name())),
        }
    }
    Ok((installed, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_kind() -> Kind {
        all()
            .into_iter()
            .find(|k| k.kind == "TrafficSplit")
            .unwrap()
    }

    fn crd(versions: &str) -> CustomResourceDefinition {
        serde_saphyr::from_str(&format!(
            "metadata: {{name: trafficsplits.split.smi-spec.io}}\n\
             spec:\n  group: split.smi-spec.io\n  scope: Namespaced\n\
             \x20 names: {{kind: TrafficSplit, plural: trafficsplits}}\n  versions: {versions}\n"
        ))
        .unwrap()
    }

    #[test]
    fn every_served_kind_has_its_plural_and_scope() {
        let kinds = all();
        let canary = kinds.iter().find(|k| k.kind == "Canary").unwrap();
        assert_eq!(canary.crd_name(), "canaries.trellis.dev");
        let mesh = kinds.iter().find(|k| k.kind == "MeshConfig").unwrap();
        assert!(!mesh.namespaced);
        assert_eq!(split_kind().versions[0], "v1alpha4");
    }

    #[test]
    fn the_newest_common_version_is_watched_with_its_status_subresource() {
        let ours = pick(
            &split_kind(),
            &crd(
                "[{name: v1alpha4, served: true, storage: true, subresources: {status: {}}}, \
                  {name: v1alpha2, served: true, storage: false}]",
            ),
        )
        .unwrap();
        assert_eq!((ours.version, ours.status), ("v1alpha4", true));
        assert_eq!(ours.api_resource().plural, "trafficsplits");
    }

    #[test]
    fn another_mesh_s_older_crd_is_watched_at_its_version_without_status() {
        let osm = pick(
            &split_kind(),
            &crd("[{name: v1alpha2, served: true, storage: true}]"),
        )
        .unwrap();
        assert_eq!((osm.version, osm.status), ("v1alpha2", false));
    }

    #[test]
    fn a_crd_serving_no_version_trellis_reads_is_reported() {
        let err = pick(
            &split_kind(),
            &crd("[{name: v1beta9, served: true, storage: true}]"),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "CRD trafficsplits.split.smi-spec.io serves v1beta9, none of which Trellis reads \
             (v1alpha4, v1alpha3, v1alpha2, v1alpha1): its resources are not read"
        );
    }
}
