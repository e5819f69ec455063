//! Watch events as a specification of what reaches the index.

use super::*;
use crate::cluster::kinds;

fn split_kind() -> Installed {
    kinds::split_hub()
}

fn resources() -> Resources {
    Resources {
        installed: split_kind(),
        observed: ObservedObjects::default(),
    }
}

fn dynamic(yaml: &str) -> DynamicObject {
    serde_saphyr::from_str(yaml).unwrap()
}

fn namespace(name: &str) -> core::Namespace {
    serde_saphyr::from_str(&format!("metadata: {{name: {name}}}")).unwrap()
}

fn describe(updates: &[Update]) -> Vec<String> {
    updates
        .iter()
        .map(|u| match u {
            Update::Apply(SourceObject::Resource(r, origin)) => {
                format!("apply {} gen={:?}", r.kind(), origin.generation)
            }
            Update::Apply(SourceObject::Invalid {
                resource, problems, ..
            }) => format!("invalid {resource}: {}", problems[0]),
            Update::Apply(SourceObject::Namespace(n)) => format!("namespace {}", n.name),
            Update::Delete(id) => format!("delete {id:?}"),
            Update::Endpoints(k, set) => format!(
                "endpoints {k}: {:?}",
                set.as_ref().map(|s| s
                    .endpoints
                    .iter()
                    .map(|e| e.ip.to_string())
                    .collect::<Vec<_>>())
            ),
            other => format!("{other:?}"),
        })
        .collect()
}

const SPLIT: &str = "
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: web, namespace: shop, generation: 3, uid: u-1}
spec: {service: web, backends: [{service: web-v1, weight: 100}]}
status: {observedGeneration: 2}
";

#[test]
fn a_resource_is_applied_with_its_generation_and_its_status_is_remembered_for_the_writer() {
    let mut r = resources();
    assert_eq!(
        describe(&r.applied(&dynamic(SPLIT))),
        ["apply TrafficSplit gen=Some(3)"]
    );
    let observed = r.observed.lock().unwrap().clone();
    let seen = &observed[&ResourceRef {
        kind: "TrafficSplit",
        namespace: Some("shop".into()),
        name: "web".into(),
    }];
    assert_eq!(seen.api_version, "split.smi-spec.io/v1alpha4");
    assert_eq!(seen.generation, Some(3));
    assert_eq!(seen.status["observedGeneration"], 2);
}

#[test]
fn an_object_that_cannot_be_read_becomes_an_invalid_resource_and_the_watch_goes_on() {
    let mut r = resources();
    let bad = dynamic(
        "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\n\
         metadata: {name: bad, namespace: shop}\nspec: {service: web, backends: 7}\n",
    );
    let updates = describe(&r.applied(&bad));
    assert_eq!(updates.len(), 1);
    assert!(
        updates[0].starts_with("invalid TrafficSplit shop/bad: spec.backends:"),
        "{updates:?}"
    );
    assert_eq!(
        describe(&r.applied(&dynamic(SPLIT))).len(),
        1,
        "the next one is read"
    );
}

#[test]
fn list_items_without_api_version_are_read_at_the_watched_version() {
    let mut r = resources();
    let item = dynamic(
        "metadata: {name: web, namespace: shop}\n\
         spec: {service: web, backends: [{service: web-v1, weight: 1}]}\n",
    );
    assert_eq!(describe(&r.applied(&item)), ["apply TrafficSplit gen=None"]);
}

#[test]
fn a_split_generated_by_the_canary_controller_is_left_to_the_controller() {
    let mut r = resources();
    let generated = dynamic(
        "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\n\
         metadata:\n  name: web-canary\n  namespace: shop\n\
         \x20 labels: {app.kubernetes.io/managed-by: trellis-operator}\n\
         \x20 ownerReferences: [{apiVersion: trellis.dev/v1alpha1, kind: Canary, name: web, uid: c-1}]\n\
         spec: {service: web, backends: [{service: web-v1, weight: 100}]}\n",
    );
    assert!(r.applied(&generated).is_empty());
    assert!(r.deleted("shop/web-canary").is_empty());
}

#[test]
fn after_a_relist_what_was_not_listed_again_is_deleted() {
    let mut relist = Relist::new(Namespaces);
    relist.event(Event::Apply(namespace("shop")));
    relist.event(Event::Apply(namespace("gone")));
    assert!(relist.event(Event::Init).is_empty());
    assert_eq!(
        describe(&relist.event(Event::InitApply(namespace("shop")))),
        ["namespace shop"]
    );
    assert_eq!(
        describe(&relist.event(Event::InitDone)),
        [r#"delete Namespace("gone")"#]
    );
    relist.event(Event::Init);
    assert!(
        describe(&relist.event(Event::InitDone)) == [r#"delete Namespace("shop")"#],
        "an empty re-list deletes everything"
    );
}

#[test]
fn a_service_s_slices_are_merged_and_a_deleted_slice_takes_its_endpoints_along() {
    let slice = |name: &str, ip: &str| -> EndpointSlice {
        serde_saphyr::from_str(&format!(
            "metadata: {{name: {name}, namespace: shop, labels: {{kubernetes.io/service-name: db}}}}\n\
             addressType: IPv4\nports: [{{name: pg, port: 5432}}]\nendpoints: [{{addresses: ['{ip}']}}]\n"
        ))
        .unwrap()
    };
    let mut relist = Relist::new(Slices::default());
    relist.event(Event::Apply(slice("db-a", "10.9.0.1")));
    assert_eq!(
        describe(&relist.event(Event::Apply(slice("db-b", "10.9.0.2")))),
        [r#"endpoints shop/db: Some(["10.9.0.1", "10.9.0.2"])"#]
    );
    assert_eq!(
        describe(&relist.event(Event::Delete(slice("db-a", "10.9.0.1")))),
        [r#"endpoints shop/db: Some(["10.9.0.2"])"#]
    );
    assert_eq!(
        describe(&relist.event(Event::Delete(slice("db-b", "10.9.0.2")))),
        ["endpoints shop/db: None"]
    );
}
