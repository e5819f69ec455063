//! What injection does to a pod, as the pod's owner sees it.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

use super::*;
use crate::inject::config::{PullPolicy, Quantity};
use crate::inject::fixtures::*;
use crate::inject::names::annotations as a;
use crate::inject::skip::parse_list;

fn args(pod: &Pod, name: &str) -> Vec<String> {
    container(pod, name).args.clone().unwrap()
}

fn quantities(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, K8sQuantity>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), K8sQuantity(v.to_string())))
            .collect(),
    )
}

#[test]
fn a_plain_pod_gets_the_proxy_first_and_trellis_init_after_its_init_containers() {
    let pod = injected(&pod(WEB), &Config::default(), false);
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(
        names(&Some(spec.containers.clone())),
        ["trellis-proxy", "web"]
    );
    assert_eq!(names(&spec.init_containers), ["migrate", "trellis-init"]);
    let volumes: Vec<&str> = spec
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(
        volumes,
        ["config", "trellis-identity", "trellis-xtables-lock"]
    );
    assert_eq!(
        pod.metadata.annotations,
        Some(labels(&[("trellis.dev/injected", "0.1.0")]))
    );
    assert_eq!(container(&pod, "trellis-proxy").restart_policy, None);
    assert_eq!(container(&pod, "trellis-proxy").startup_probe, None);
}

#[test]
fn the_proxy_dials_the_control_plane_as_the_pod_and_forwards_inbound_to_the_app_port() {
    let pod = injected(&pod(WEB), &Config::default(), false);
    let proxy = container(&pod, "trellis-proxy");
    assert_eq!(
        proxy.image.as_deref(),
        Some("ghcr.io/trellis-mesh/proxy:0.1.0")
    );
    assert_eq!(proxy.command, Some(vec!["trellis-proxy".to_owned()]));
    assert_eq!(
        args(&pod, "trellis-proxy"),
        [
            "--control-plane",
            "http://trellis-operator.trellis-system.svc:8090",
            "--workload",
            "$(POD_NAMESPACE)/$(POD_NAME)",
            "--identity",
            "spiffe://cluster.local/ns/$(POD_NAMESPACE)/sa/$(POD_SERVICE_ACCOUNT)",
            "--identity-token-file",
            "/var/run/secrets/trellis.dev/identity/token",
            "--admin",
            "0.0.0.0:4191",
            "--outbound",
            "127.0.0.1:4140",
            "--inbound",
            "0.0.0.0:4143",
            "--inbound-target",
            "127.0.0.1:8080",
        ]
    );
    let env: Vec<(String, String)> = proxy
        .env
        .iter()
        .flatten()
        .map(|e| {
            let field = e.value_from.as_ref().unwrap().field_ref.as_ref().unwrap();
            (e.name.clone(), field.field_path.clone())
        })
        .collect();
    assert_eq!(
        env,
        [
            ("POD_NAME".into(), "metadata.name".into()),
            ("POD_NAMESPACE".into(), "metadata.namespace".into()),
            (
                "POD_SERVICE_ACCOUNT".into(),
                "spec.serviceAccountName".into()
            ),
        ]
    );
    let ports: Vec<(Option<&str>, i32)> = proxy
        .ports
        .iter()
        .flatten()
        .map(|p| (p.name.as_deref(), p.container_port))
        .collect();
    assert_eq!(
        ports,
        [
            (Some("trellis-inbound"), 4143),
            (Some("trellis-admin"), 4191)
        ]
    );
}

#[test]
fn the_proxy_is_probed_on_its_admin_port_and_runs_locked_down() {
    let pod = injected(&pod(WEB), &Config::default(), false);
    let proxy = container(&pod, "trellis-proxy");
    let get = |probe: &Option<k8s_openapi::api::core::v1::Probe>| {
        let http = probe.as_ref().unwrap().http_get.as_ref().unwrap();
        (http.path.clone().unwrap(), http.port.clone())
    };
    assert_eq!(
        get(&proxy.readiness_probe),
        ("/ready".into(), IntOrString::Int(4191))
    );
    assert_eq!(
        get(&proxy.liveness_probe),
        ("/live".into(), IntOrString::Int(4191))
    );
    let sc = proxy.security_context.as_ref().unwrap();
    assert_eq!(sc.run_as_user, Some(2102));
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    let caps = sc.capabilities.as_ref().unwrap();
    assert_eq!(
        (caps.add.clone(), caps.drop.clone()),
        (None, Some(vec!["ALL".into()]))
    );
    assert_eq!(
        proxy.resources.as_ref().unwrap().requests,
        quantities(&[("cpu", "10m"), ("memory", "32Mi")])
    );
    assert_eq!(proxy.resources.as_ref().unwrap().limits, None);
    let mount = &proxy.volume_mounts.as_ref().unwrap()[0];
    assert_eq!(
        (
            mount.name.as_str(),
            mount.mount_path.as_str(),
            mount.read_only
        ),
        (
            "trellis-identity",
            "/var/run/secrets/trellis.dev/identity",
            Some(true)
        )
    );
}

#[test]
fn the_identity_volume_is_a_projected_token_for_audience_trellis() {
    let pod = injected(&pod(WEB), &Config::default(), false);
    let volume = pod
        .spec
        .unwrap()
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == "trellis-identity")
        .unwrap();
    assert_eq!(
        serde_json::to_value(volume).unwrap(),
        json!({"name": "trellis-identity", "projected": {"sources": [{"serviceAccountToken":
            {"audience": "trellis", "expirationSeconds": 3600, "path": "token"}}]}})
    );
}

#[test]
fn trellis_init_writes_the_iptables_rules_as_root_with_net_admin_and_net_raw_only() {
    let pod = injected(&pod(WEB), &Config::default(), false);
    assert_eq!(args(&pod, "trellis-init"), ["init", "--proxy-uid", "2102"]);
    let init = container(&pod, "trellis-init");
    assert_eq!(init.command, Some(vec!["trellis-proxy".to_owned()]));
    let sc = init.security_context.as_ref().unwrap();
    assert_eq!((sc.run_as_user, sc.run_as_non_root), (Some(0), Some(false)));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    let caps = sc.capabilities.as_ref().unwrap();
    assert_eq!(caps.add, Some(vec!["NET_ADMIN".into(), "NET_RAW".into()]));
    assert_eq!(caps.drop, Some(vec!["ALL".into()]));
    // iptables takes its lock in /run, writable although the root filesystem is not.
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(init.volume_mounts.as_ref().unwrap()[0].mount_path, "/run");
}

#[test]
fn native_sidecars_run_the_proxy_as_an_init_container_after_trellis_init_and_before_the_apps() {
    let pod = injected(&pod(WEB), &Config::default(), true);
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(names(&Some(spec.containers.clone())), ["web"]);
    assert_eq!(
        names(&spec.init_containers),
        ["trellis-init", "trellis-proxy", "migrate"]
    );
    let proxy = container(&pod, "trellis-proxy");
    assert_eq!(proxy.restart_policy.as_deref(), Some("Always"));
    // The app's init containers start once the proxy listens.
    let startup = proxy
        .startup_probe
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap();
    assert_eq!(
        (startup.path.as_deref(), &startup.port),
        (Some("/live"), &IntOrString::Int(4191))
    );
    assert!(proxy.readiness_probe.is_some() && proxy.liveness_probe.is_some());
    assert_eq!(
        args(&pod, "trellis-proxy")[..2],
        [
            "--control-plane",
            "http://trellis-operator.trellis-system.svc:8090"
        ]
    );
}

#[test]
fn a_pod_without_init_containers_gets_a_list_of_its_own() {
    let plain = web(|p| {
        p["spec"].as_object_mut().unwrap().remove("initContainers");
        p["spec"].as_object_mut().unwrap().remove("volumes");
        p["metadata"].as_object_mut().unwrap().remove("labels");
    });
    let pod = injected(&plain, &Config::default(), true);
    assert_eq!(
        names(&pod.spec.as_ref().unwrap().init_containers),
        ["trellis-init", "trellis-proxy"]
    );
    let pod = injected(&plain, &Config::default(), false);
    assert_eq!(
        names(&pod.spec.as_ref().unwrap().init_containers),
        ["trellis-init"]
    );
}

#[test]
fn the_config_sets_image_control_plane_trust_domain_uid_and_skip_lists() {
    let config = Config {
        image: "registry.local/proxy:dev".into(),
        image_pull_policy: Some(PullPolicy::Always),
        control_plane: "http://trellis-operator.mesh.svc:8090".into(),
        trust_domain: "example.org".into(),
        proxy_uid: 3000,
        skip_outbound_ports: parse_list("25").unwrap(),
        skip_inbound_ports: parse_list("22").unwrap(),
        skip_outbound_cidrs: parse_list("169.254.169.254/32").unwrap(),
        ..Config::default()
    };
    let pod = injected(&pod(WEB), &config, false);
    for name in ["trellis-proxy", "trellis-init"] {
        let c = container(&pod, name);
        assert_eq!(c.image.as_deref(), Some("registry.local/proxy:dev"));
        assert_eq!(c.image_pull_policy.as_deref(), Some("Always"));
    }
    let proxy = args(&pod, "trellis-proxy");
    assert_eq!(proxy[1], "http://trellis-operator.mesh.svc:8090");
    assert_eq!(
        proxy[5],
        "spiffe://example.org/ns/$(POD_NAMESPACE)/sa/$(POD_SERVICE_ACCOUNT)"
    );
    let sc = container(&pod, "trellis-proxy")
        .security_context
        .clone()
        .unwrap();
    assert_eq!(sc.run_as_user, Some(3000));
    assert_eq!(
        args(&pod, "trellis-init"),
        [
            "init",
            "--proxy-uid",
            "3000",
            "--skip-outbound-ports",
            "25",
            "--skip-inbound-ports",
            "22",
            "--skip-outbound-cidrs",
            "169.254.169.254/32",
        ]
    );
}

#[test]
fn pod_annotations_override_resources_and_add_to_the_skip_lists() {
    let config = Config {
        skip_outbound_ports: parse_list("25").unwrap(),
        resources: crate::inject::config::Resources {
            limits: crate::inject::config::Limits {
                cpu: Some(Quantity("1".into())),
                memory: Some(Quantity("128Mi".into())),
            },
            ..Default::default()
        },
        ..Config::default()
    };
    let annotated = web(|p| {
        p["metadata"]["annotations"] = json!({
            a::SKIP_OUTBOUND_PORTS: "3306,5432",
            a::SKIP_INBOUND_PORTS: "22",
            a::SKIP_OUTBOUND_CIDRS: "10.0.0.0/8,fd00::/8",
            a::PROXY_CPU_REQUEST: "100m",
            a::PROXY_MEMORY_LIMIT: "256Mi",
        });
    });
    let pod = injected(&annotated, &config, false);
    assert_eq!(
        args(&pod, "trellis-init"),
        [
            "init",
            "--proxy-uid",
            "2102",
            "--skip-outbound-ports",
            "25,3306,5432",
            "--skip-inbound-ports",
            "22",
            "--skip-outbound-cidrs",
            "10.0.0.0/8,fd00::/8",
        ]
    );
    let resources = container(&pod, "trellis-proxy").resources.clone().unwrap();
    assert_eq!(
        resources.requests,
        quantities(&[("cpu", "100m"), ("memory", "32Mi")])
    );
    assert_eq!(
        resources.limits,
        quantities(&[("cpu", "1"), ("memory", "256Mi")])
    );
    // The user's annotations stay, ours is added.
    let annotations = pod.metadata.annotations.unwrap();
    assert_eq!(annotations[a::PROXY_CPU_REQUEST], "100m");
    assert_eq!(annotations["trellis.dev/injected"], "0.1.0");
}

#[test]
fn a_bad_annotation_is_an_error_naming_it() {
    let bad = web(|p| p["metadata"]["annotations"] = json!({a::PROXY_CPU_LIMIT: "lots"}));
    let skip = injection(&bad, &Config::default(), false).unwrap_err();
    assert!(skip.is_error());
    assert!(
        skip.to_string()
            .starts_with(r#"annotation trellis.dev/proxy-cpu-limit: "lots" is not a quantity"#),
        "{skip}"
    );
}

#[test]
fn the_opt_out_label_wins_over_everything() {
    let out = web(|p| p["metadata"]["labels"]["trellis.dev/inject"] = json!("disabled"));
    assert_eq!(
        injection(&out, &Config::default(), false),
        Err(Skip::OptedOut)
    );
    let p = typed(&out);
    let ns = labels(&[("trellis.dev/inject", "enabled")]);
    let decided = inject(
        &p.metadata,
        p.spec.as_ref().unwrap(),
        Some(&ns),
        &Config::default(),
        false,
    );
    assert_eq!(decided, Err(Skip::OptedOut));
}

#[test]
fn with_namespace_labels_the_namespace_or_the_pod_must_opt_in() {
    let decide = |pod: &serde_json::Value, ns: &[(&str, &str)]| {
        let p = typed(pod);
        inject(
            &p.metadata,
            p.spec.as_ref().unwrap(),
            Some(&labels(ns)),
            &Config::default(),
            false,
        )
        .map(|_| "injected")
    };
    let plain = pod(WEB);
    assert_eq!(decide(&plain, &[]), Err(Skip::NotEnabled));
    assert_eq!(
        decide(&plain, &[("trellis.dev/inject", "disabled")]),
        Err(Skip::NotEnabled)
    );
    assert_eq!(
        decide(&plain, &[("trellis.dev/inject", "enabled")]),
        Ok("injected")
    );
    let opted_in = web(|p| p["metadata"]["labels"]["trellis.dev/inject"] = json!("enabled"));
    assert_eq!(decide(&opted_in, &[]), Ok("injected"));
}

#[test]
fn host_network_pods_are_skipped() {
    let host = web(|p| p["spec"]["hostNetwork"] = json!(true));
    assert_eq!(
        injection(&host, &Config::default(), false),
        Err(Skip::HostNetwork)
    );
}

#[test]
fn injecting_twice_changes_nothing() {
    for native in [false, true] {
        let once = serde_json::to_value(injected(&pod(WEB), &Config::default(), native)).unwrap();
        assert_eq!(
            injection(&once, &Config::default(), native),
            Err(Skip::AlreadyInjected)
        );
    }
    // A proxy container added by hand counts too, annotation or not.
    let by_hand = web(|p| p["spec"]["containers"][0]["name"] = json!("trellis-proxy"));
    assert_eq!(
        injection(&by_hand, &Config::default(), false),
        Err(Skip::AlreadyInjected)
    );
}

#[test]
fn inbound_traffic_goes_to_the_first_tcp_port_and_other_ports_bypass_the_proxy() {
    let ports = web(|p| {
        p["spec"]["containers"] = json!([
            {"name": "dns", "image": "dns", "ports": [{"containerPort": 53, "protocol": "UDP"}]},
            {"name": "web", "image": "web", "ports": [{"containerPort": 3000}, {"containerPort": 9090}]},
            {"name": "admin", "image": "admin", "ports": [{"containerPort": 9091, "protocol": "TCP"}]},
        ]);
    });
    let inj = injection(&ports, &Config::default(), false).unwrap();
    assert_eq!(
        inj.notes,
        [
            "inbound traffic goes to port 3000",
            "ports 9090,9091 are reached directly, without the proxy (it forwards to one port)"
        ]
    );
    let pod = injected(&ports, &Config::default(), false);
    assert_eq!(
        args(&pod, "trellis-proxy")[14..],
        ["--inbound-target", "127.0.0.1:3000"]
    );
    assert_eq!(
        args(&pod, "trellis-init")[3..],
        ["--skip-inbound-ports", "9090,9091"]
    );

    // A port the pod skips is never the target.
    let skipped = web(|p| {
        p["metadata"]["annotations"] = json!({a::SKIP_INBOUND_PORTS: "3000"});
        p["spec"]["containers"] = json!([{"name": "web", "image": "web",
            "ports": [{"containerPort": 3000}, {"containerPort": 8081}]}]);
    });
    let pod = injected(&skipped, &Config::default(), false);
    assert_eq!(args(&pod, "trellis-proxy")[15], "127.0.0.1:8081");
    assert_eq!(
        args(&pod, "trellis-init")[3..],
        ["--skip-inbound-ports", "3000"]
    );
}

#[test]
fn without_a_container_port_the_proxy_default_target_is_said() {
    let portless = web(|p| {
        p["spec"]["containers"][0]
            .as_object_mut()
            .unwrap()
            .remove("ports")
            .map(|_| ())
            .unwrap()
    });
    let inj = injection(&portless, &Config::default(), false).unwrap();
    assert_eq!(
        inj.notes,
        ["no containerPort declared: inbound traffic goes to port 8080"]
    );
    let pod = injected(&portless, &Config::default(), false);
    assert!(!args(&pod, "trellis-proxy").contains(&"--inbound-target".to_owned()));
}
