//! The CustomResourceDefinitions Trellis installs: one per kind, every served version in
//! it, the hub as the storage version. `trellis crds` writes them to
//! `charts/trellis/crds/`; CI regenerates them and fails on a diff.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};
use kube::CustomResourceExt;
use kube::core::crd::merge_crds;

use crate::{access, specs, split, trellis};

/// Every CRD, in a stable order.
pub fn all() -> Vec<CustomResourceDefinition> {
    let smi = |crds: Vec<CustomResourceDefinition>, hub: &str| finish(merge(crds, hub), "smi");
    vec![
        smi(
            vec![
                split::v1alpha4::TrafficSplit::crd(),
                split::v1alpha3::TrafficSplit::crd(),
                split::v1alpha2::TrafficSplit::crd(),
                split::v1alpha1::TrafficSplit::crd(),
            ],
            split::HUB_VERSION,
        ),
        smi(
            vec![
                access::v1alpha3::TrafficTarget::crd(),
                access::v1alpha2::TrafficTarget::crd(),
            ],
            access::HUB_VERSION,
        ),
        smi(
            vec![
                specs::http_route_group::v1alpha4::HTTPRouteGroup::crd(),
                specs::http_route_group::v1alpha3::HTTPRouteGroup::crd(),
            ],
            specs::HUB_VERSION,
        ),
        smi(
            vec![
                specs::tcp_route::v1alpha4::TCPRoute::crd(),
                specs::tcp_route::v1alpha3::TCPRoute::crd(),
            ],
            specs::HUB_VERSION,
        ),
        smi(
            vec![specs::udp_route::v1alpha4::UDPRoute::crd()],
            specs::HUB_VERSION,
        ),
        finish(trellis::mesh_config::MeshConfig::crd(), "trellis"),
        finish(trellis::traffic_policy::TrafficPolicy::crd(), "trellis"),
        finish(trellis::canary::Canary::crd(), "trellis"),
    ]
}

fn merge(crds: Vec<CustomResourceDefinition>, hub: &str) -> CustomResourceDefinition {
    merge_crds(crds, hub).expect("versions of one kind share group, kind and scope")
}

/// Stable version order (newest first), categories for `kubectl get smi`, and a root
/// schema that, like the upstream CRDs, does not require `spec` (Trellis reports a
/// missing spec as a validation error instead).
fn finish(mut crd: CustomResourceDefinition, category: &str) -> CustomResourceDefinition {
    crd.spec.versions.sort_by(|a, b| b.name.cmp(&a.name));
    crd.spec.names.categories = Some(vec![category.to_owned()]);
    crd.metadata.labels =
        Some([("app.kubernetes.io/part-of".to_owned(), "trellis".to_owned())].into());
    for version in &mut crd.spec.versions {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            relax_root(schema);
            allow_unknown_fields(schema);
        }
    }
    crd
}

/// `additionalProperties: false` (from `deny_unknown_fields`) is not allowed in a
/// structural schema; the API server prunes unknown fields instead, and
/// `trellis validate` reports them.
fn allow_unknown_fields(schema: &mut JSONSchemaProps) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
    };
    if matches!(
        schema.additional_properties,
        Some(JSONSchemaPropsOrBool::Bool(false))
    ) {
        schema.additional_properties = None;
    }
    for child in schema.properties.iter_mut().flat_map(|p| p.values_mut()) {
        allow_unknown_fields(child);
    }
    match schema.items.as_mut() {
        Some(JSONSchemaPropsOrArray::Schema(item)) => allow_unknown_fields(item),
        Some(JSONSchemaPropsOrArray::Schemas(items)) => {
            items.iter_mut().for_each(allow_unknown_fields)
        }
        None => {}
    }
    if let Some(JSONSchemaPropsOrBool::Schema(extra)) = schema.additional_properties.as_mut() {
        allow_unknown_fields(extra);
    }
}

fn relax_root(schema: &mut JSONSchemaProps) {
    if let Some(required) = schema.required.as_mut() {
        required.retain(|r| r != "spec");
        if required.is_empty() {
            schema.required = None;
        }
    }
}
