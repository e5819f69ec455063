//! Canaries in the index: the last good version stays in force, each change is named by
//! [`Key::Canary`], and readers list them across namespaces.

use super::apply::Writer;
use super::tests::mk_resource;
use super::*;

/// A Canary `<ns>/web` moving traffic of `web` from `web-v1` to `web-v2` by `step`.
fn mk_canary(ns: &str, step: i64) -> SourceObject {
    mk_resource(&format!(
        "apiVersion: trellis.dev/v1alpha1\nkind: Canary\nmetadata: {{name: web, namespace: {ns}}}\n\
         spec:\n  service: web\n  stable: web-v1\n  canary: web-v2\n  analysis:\n    interval: 1m\n    stepWeight: {step}\n    \
         metrics: [{{name: request-success-rate, thresholdRange: {{min: 99}}}}]\n"
    ))
}

fn canary_key(ns: &str) -> Key {
    Key::Canary(ObjKey::new(ns, "web"))
}

#[test]
fn a_canary_is_kept_and_named_by_its_own_key() {
    let mut w = Writer::new(Options::default());
    w.apply(Update::Apply(mk_canary("shop", 20)));
    assert_eq!(w.finish(), [canary_key("shop")]);
    let key = ObjKey::new("shop", "web");
    let c = w.snapshot.canary(&key).expect("in force");
    assert_eq!(c.spec.analysis.step_weight, Some(20));
    let (r, status) = w.snapshot.statuses()[0];
    assert_eq!(r.to_string(), "Canary shop/web");
    assert!(status.accepted);

    // The same version again changes nothing.
    w.apply(Update::Apply(mk_canary("shop", 20)));
    assert!(w.finish().is_empty());
}

#[test]
fn a_bad_canary_keeps_the_last_good_version_in_force_and_says_why() {
    let mut w = Writer::new(Options::default());
    w.apply(Update::Apply(mk_canary("shop", 20)));
    w.finish();
    w.apply(Update::Apply(mk_canary("shop", 0)));
    assert!(w.finish().is_empty(), "nothing in force changed");
    let snapshot = w.snapshot.clone();
    let (_, status) = snapshot.statuses()[0];
    assert!(!status.accepted);
    assert!(status.previous_in_force);
    assert_eq!(
        status.problems[0].to_string(),
        "spec.analysis.stepWeight: must be between 1 and 100, got 0"
    );
    let key = ObjKey::new("shop", "web");
    assert_eq!(
        snapshot
            .reader()
            .canary(&key)
            .unwrap()
            .spec
            .analysis
            .step_weight,
        Some(20),
        "the last good version"
    );

    // A bad first version: nothing is in force.
    let mut w = Writer::new(Options::default());
    w.apply(Update::Apply(mk_canary("shop", 0)));
    assert!(w.finish().is_empty());
    assert!(w.snapshot.canary(&key).is_none());
    assert!(!w.snapshot.statuses()[0].1.previous_in_force);
}

#[test]
fn a_source_that_no_longer_holds_a_canary_deletes_it() {
    let mut w = Writer::new(Options::default());
    w.apply(Update::Source {
        name: "git".into(),
        objects: vec![mk_canary("shop", 20)],
    });
    w.finish();
    w.apply(Update::Source {
        name: "git".into(),
        objects: vec![],
    });
    assert_eq!(w.finish(), [canary_key("shop")]);
    assert!(w.snapshot.reader().canaries().is_empty());
    assert!(w.snapshot.statuses().is_empty());
}

#[test]
fn readers_list_canaries_of_every_namespace_by_key_and_depend_on_them() {
    let snapshot = Snapshot::build(
        Options::default(),
        ["web", "books", "shop"].map(|ns| Update::Apply(mk_canary(ns, 10))),
    );
    let reader = snapshot.reader();
    let listed: Vec<String> = reader
        .canaries()
        .iter()
        .map(|(key, c)| format!("{key} {}", c.spec.canary))
        .collect();
    assert_eq!(
        listed,
        ["books/web web-v2", "shop/web web-v2", "web/web web-v2"]
    );
    let mut deps: Vec<Key> = reader.into_deps().into_iter().collect();
    deps.sort();
    assert_eq!(
        deps,
        [canary_key("books"), canary_key("shop"), canary_key("web")]
    );
}
