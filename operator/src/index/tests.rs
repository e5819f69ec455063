//! The writer as a specification: what each update changes and which keys it names.

use std::collections::BTreeMap;
use std::sync::Arc;

use trellis_proxy_api::v1::ProtocolHint;

use super::apply::Writer;
use super::*;

pub(crate) fn mk_resource(yaml: &str) -> SourceObject {
    let value: serde_json::Value = serde_saphyr::from_str(yaml).unwrap();
    let resource = smi_crds::dynamic::parse(value).unwrap().unwrap();
    SourceObject::Resource(Box::new(resource), Origin::source("test"))
}

pub(crate) fn mk_service(ns: &str, name: &str, app: &str) -> Service {
    Service {
        key: ObjKey::new(ns, name),
        ports: vec![ServicePort {
            name: "http".into(),
            port: 80,
            target_port: TargetPort::Number(8080),
            protocol: ProtocolHint::Unspecified,
            udp: false,
        }],
        selector: Some([("app".to_owned(), app.to_owned())].into()),
        cluster_ips: vec![],
    }
}

pub(crate) fn mk_workload(ns: &str, name: &str, app: &str, ip: &str) -> Workload {
    Workload {
        key: ObjKey::new(ns, name),
        service_account: app.into(),
        labels: Arc::new([("app".to_owned(), app.to_owned())].into()),
        addresses: vec![ip.parse().unwrap()],
        ports: vec![],
        ready: true,
        meshed: true,
        inbound_port: None,
        admin_port: None,
    }
}

fn local() -> Writer {
    Writer::new(Options {
        endpoints_from_workloads: true,
    })
}

fn keys(writer: &mut Writer) -> Vec<String> {
    writer.finish().iter().map(|k| format!("{k:?}")).collect()
}

#[test]
fn a_registered_workload_becomes_an_endpoint_of_the_services_selecting_it() {
    let mut w = local();
    w.apply(Update::Apply(SourceObject::Service(mk_service(
        "shop", "web", "web",
    ))));
    w.apply(Update::Apply(SourceObject::Service(mk_service(
        "shop", "api", "api",
    ))));
    w.finish();
    w.apply(Update::Workload(mk_workload(
        "shop", "web-1", "web", "10.0.0.1",
    )));
    let changed = keys(&mut w);
    assert!(
        changed.contains(&r#"Endpoints(ObjKey { namespace: "shop", name: "web" })"#.to_owned()),
        "{changed:?}"
    );
    assert!(
        !changed.iter().any(|k| k.contains(r#"name: "api""#)),
        "{changed:?}"
    );
    let reader = w.snapshot.reader();
    let set = reader.endpoints(&ObjKey::new("shop", "web")).unwrap();
    assert_eq!(set.endpoints.len(), 1);
    assert_eq!(
        *set.endpoints[0].ports,
        BTreeMap::from([("http".to_owned(), 8080)])
    );
    assert!(
        reader
            .endpoints(&ObjKey::new("shop", "api"))
            .unwrap()
            .endpoints
            .is_empty()
    );
}

#[test]
fn removing_a_workload_removes_its_endpoint() {
    let mut w = local();
    w.apply(Update::Apply(SourceObject::Service(mk_service(
        "shop", "web", "web",
    ))));
    w.apply(Update::Workload(mk_workload(
        "shop", "web-1", "web", "10.0.0.1",
    )));
    w.finish();
    w.apply(Update::RemoveWorkload(ObjKey::new("shop", "web-1")));
    let changed = keys(&mut w);
    assert!(
        changed.iter().any(|k| k.starts_with("Endpoints")),
        "{changed:?}"
    );
    assert!(
        w.snapshot
            .reader()
            .endpoints(&ObjKey::new("shop", "web"))
            .unwrap()
            .endpoints
            .is_empty()
    );
}

#[test]
fn the_same_object_again_changes_nothing_and_keeps_the_revision() {
    let mut w = local();
    w.apply(Update::Apply(SourceObject::Service(mk_service(
        "shop", "web", "web",
    ))));
    w.finish();
    let revision = w.snapshot.revision;
    w.apply(Update::Apply(SourceObject::Service(mk_service(
        "shop", "web", "web",
    ))));
    assert!(w.finish().is_empty());
    assert_eq!(w.snapshot.revision, revision);
}

const SPLIT: &str = "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\n\
metadata: {name: web-rollout, namespace: shop}\n\
spec:\n  service: web.shop.svc.cluster.local\n  backends:\n  - {service: web-v1, weight: 90}\n  - {service: web-v2, weight: 10}\n";

#[test]
fn a_split_is_indexed_under_its_root_and_names_only_that_root() {
    let mut w = local();
    w.apply(Update::Apply(mk_resource(SPLIT)));
    assert_eq!(
        keys(&mut w),
        [r#"SplitsOf(ObjKey { namespace: "shop", name: "web" })"#]
    );
    let reader = w.snapshot.reader();
    let splits = reader.splits_of(&ObjKey::new("shop", "web"));
    assert_eq!(splits.len(), 1);
    assert_eq!(splits[0].0, "web-rollout");
}

#[test]
fn an_invalid_version_keeps_the_last_good_one_in_force_and_says_why() {
    let mut w = local();
    w.apply(Update::Apply(mk_resource(SPLIT)));
    w.finish();
    w.apply(Update::Apply(mk_resource(
        &SPLIT.replace("weight: 10", "weight: -5"),
    )));
    assert!(w.finish().is_empty(), "nothing in force changed");
    let snapshot = w.snapshot.clone();
    let (r, status) = snapshot.statuses()[0];
    assert_eq!(r.to_string(), "TrafficSplit shop/web-rollout");
    assert!(!status.accepted);
    assert!(status.previous_in_force);
    assert_eq!(status.problems[0].field, "spec.backends[1].weight");
    let reader = snapshot.reader();
    let split = reader.splits_of(&ObjKey::new("shop", "web"))[0].1;
    assert_eq!(split.spec.backends[1].weight.to_string(), "10");
}

#[test]
fn a_source_that_no_longer_holds_an_object_deletes_it() {
    let mut w = local();
    w.apply(Update::Source {
        name: "git".into(),
        objects: vec![
            mk_resource(SPLIT),
            SourceObject::Service(mk_service("shop", "web", "web")),
        ],
    });
    w.finish();
    w.apply(Update::Source {
        name: "git".into(),
        objects: vec![SourceObject::Service(mk_service("shop", "web", "web"))],
    });
    assert_eq!(
        keys(&mut w),
        [r#"SplitsOf(ObjKey { namespace: "shop", name: "web" })"#]
    );
    assert!(
        w.snapshot
            .reader()
            .splits_of(&ObjKey::new("shop", "web"))
            .is_empty()
    );
    assert!(w.snapshot.statuses().is_empty());
}

#[test]
fn a_reader_keeps_its_snapshot_while_the_writer_moves_on() {
    let mut w = local();
    w.apply(Update::Apply(SourceObject::Service(mk_service(
        "shop", "web", "web",
    ))));
    w.finish();
    let before = Arc::new(w.snapshot.clone());
    w.apply(Update::Delete(ObjectId::Service(ObjKey::new(
        "shop", "web",
    ))));
    w.finish();
    assert!(
        before
            .reader()
            .service(&ObjKey::new("shop", "web"))
            .is_some()
    );
    assert!(
        w.snapshot
            .reader()
            .service(&ObjKey::new("shop", "web"))
            .is_none()
    );
}

#[test]
fn a_reader_records_what_it_read() {
    let mut w = local();
    w.apply(Update::Apply(SourceObject::Service(mk_service(
        "shop", "web", "web",
    ))));
    w.finish();
    let reader = w.snapshot.reader();
    let web = ObjKey::new("shop", "web");
    reader.service(&web);
    reader.splits_of(&web);
    let mut deps: Vec<_> = reader.into_deps().into_iter().collect();
    deps.sort();
    assert_eq!(deps, [Key::Service(web.clone()), Key::SplitsOf(web)]);
}

#[tokio::test]
async fn the_task_batches_updates_and_tells_listeners_what_changed() {
    let index = Index::spawn(Options {
        endpoints_from_workloads: true,
    });
    let seen: Arc<std::sync::Mutex<Vec<Key>>> = Arc::default();
    let sink = seen.clone();
    index.on_change(Box::new(move |_, keys| {
        sink.lock().unwrap().extend_from_slice(keys)
    }));
    index.update(Update::Apply(SourceObject::Service(mk_service(
        "shop", "web", "web",
    ))));
    index.update(Update::Workload(mk_workload(
        "shop", "web-1", "web", "10.0.0.1",
    )));
    let revision = index.flush().await;
    assert!(revision >= 1);
    assert_eq!(index.snapshot().endpoint_count(), 1);
    assert!(
        seen.lock()
            .unwrap()
            .contains(&Key::Endpoints(ObjKey::new("shop", "web")))
    );
}

#[test]
fn an_unreadable_resource_keeps_its_last_good_version_and_is_not_deleted_by_its_source() {
    let mut w = local();
    w.apply(Update::Source {
        name: "git".into(),
        objects: vec![mk_resource(SPLIT)],
    });
    w.finish();
    let split = ResourceRef {
        kind: "TrafficSplit",
        namespace: Some("shop".into()),
        name: "web-rollout".into(),
    };
    w.apply(Update::Source {
        name: "git".into(),
        objects: vec![SourceObject::Invalid {
            resource: split.clone(),
            origin: Origin::source("git"),
            problems: vec![smi_crds::validate::Problem::error(
                "spec.backends",
                "must be a list",
            )],
        }],
    });
    assert!(w.finish().is_empty(), "the split in force did not change");
    assert_eq!(
        w.snapshot
            .reader()
            .splits_of(&ObjKey::new("shop", "web"))
            .len(),
        1
    );
    let snapshot = w.snapshot.clone();
    let (r, status) = snapshot.statuses()[0];
    assert_eq!(r, &split);
    assert!(!status.accepted && status.previous_in_force);
}

#[test]
fn without_a_mesh_config_the_defaults_hold() {
    let snapshot = Snapshot::default();
    let mesh = snapshot.reader().mesh_config();
    assert_eq!(mesh.trust_domain, "cluster.local");
    assert_eq!(mesh.certificates.workload_lifetime, "24h");
    assert!(!mesh.permissive);
}

#[test]
fn endpoint_slices_give_the_endpoints_of_services_without_a_selector_only() {
    let mut w = local();
    let mut external = mk_service("shop", "db", "db");
    external.selector = None;
    w.apply(Update::Apply(SourceObject::Service(external)));
    w.apply(Update::Apply(SourceObject::Service(mk_service(
        "shop", "web", "web",
    ))));
    w.apply(Update::Workload(mk_workload(
        "shop", "web-1", "web", "10.0.0.1",
    )));
    let sliced = |ip: &str| EndpointSet {
        endpoints: vec![Endpoint {
            ip: ip.parse().unwrap(),
            ports: Arc::new(BTreeMap::from([("http".to_owned(), 5432)])),
            ready: true,
            service_account: None,
            workload: None,
            labels: Arc::default(),
        }],
    };
    w.apply(Update::Endpoints(
        ObjKey::new("shop", "db"),
        Some(sliced("10.9.0.1")),
    ));
    w.apply(Update::Endpoints(
        ObjKey::new("shop", "web"),
        Some(sliced("10.9.0.2")),
    ));
    w.finish();
    let ips = |w: &Writer, name: &str| -> Vec<String> {
        let reader = w.snapshot.reader();
        reader
            .endpoints(&ObjKey::new("shop", name))
            .map(|s| s.endpoints.iter().map(|e| e.ip.to_string()).collect())
            .unwrap_or_default()
    };
    assert_eq!(ips(&w, "db"), ["10.9.0.1"], "the slice's endpoints");
    assert_eq!(ips(&w, "web"), ["10.0.0.1"], "the selector's workloads win");

    w.apply(Update::Endpoints(ObjKey::new("shop", "db"), None));
    w.finish();
    assert!(ips(&w, "db").is_empty(), "the slices are gone");
}
