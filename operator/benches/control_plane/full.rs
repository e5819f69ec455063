//! The full compile: every config the mesh can ask for, from one snapshot, on one thread,
//! as a watch makes it (compile, then `version_of`, which encodes and hashes).

use std::time::{Duration, Instant};

use prost::Message;
use serde::Serialize;
use trellis_operator::compile::{Target, inbound::inbound, outbound::outbound};
use trellis_operator::discovery::version_of;
use trellis_operator::index::{ObjKey, Snapshot};

use crate::mesh::Mesh;

/// One kind of config.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Part {
    pub configs: usize,
    /// Compile alone.
    pub compile_s: f64,
    /// `version_of`: encoding + hashing, what the watch does before it sends.
    pub version_s: f64,
    /// Mean compile + version per config, µs.
    pub mean_us: f64,
    pub encoded_bytes: u64,
    /// Mean number of index keys a config read (its dependencies).
    pub mean_deps: f64,
    /// Outbound: configs with a route that has no backend. Inbound: configs without any
    /// authorization. Both expected 0 in the generated mesh.
    pub degenerate: usize,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct FullCompile {
    /// Every Service at each of its ports, by authority.
    pub outbound: Part,
    /// Every workload.
    pub inbound: Part,
    pub total_s: f64,
}

pub fn run(mesh: &Mesh, snapshot: &Snapshot) -> FullCompile {
    let mut outbound_part = Part::default();
    let mut deps = 0usize;
    let (mut compile_t, mut version_t) = (Duration::ZERO, Duration::ZERO);
    let mut client = ObjKey::new("", "");
    for s in 0..mesh.services {
        let key = mesh.service_key(s);
        if client.namespace != key.namespace {
            client = mesh.workload(s, 0).key;
        }
        for port in mesh.ports(s) {
            let target = Target::Authority(format!("{}.{}:{port}", key.name, key.namespace));
            let t = Instant::now();
            let compiled = outbound(snapshot, &client, &target);
            let t1 = Instant::now();
            let version = version_of(&compiled.config);
            version_t += t1.elapsed();
            compile_t += t1 - t;
            std::hint::black_box(version);
            outbound_part.configs += 1;
            outbound_part.encoded_bytes += compiled.config.encoded_len() as u64;
            deps += compiled.deps.len();
            if compiled.config.routes.iter().any(|r| r.backends.is_empty()) {
                outbound_part.degenerate += 1;
            }
        }
    }
    finish(&mut outbound_part, compile_t, version_t, deps);

    let mut inbound_part = Part::default();
    let mut deps = 0usize;
    let (mut compile_t, mut version_t) = (Duration::ZERO, Duration::ZERO);
    for s in 0..mesh.services {
        for k in 0..mesh.endpoints_per_service {
            let key = workload_key(mesh, s, k);
            let t = Instant::now();
            let compiled = inbound(snapshot, &key);
            let t1 = Instant::now();
            let version = version_of(&compiled.config);
            version_t += t1.elapsed();
            compile_t += t1 - t;
            std::hint::black_box(version);
            inbound_part.configs += 1;
            inbound_part.encoded_bytes += compiled.config.encoded_len() as u64;
            deps += compiled.deps.len();
            if compiled
                .config
                .ports
                .iter()
                .all(|p| p.authorizations.is_empty())
            {
                inbound_part.degenerate += 1;
            }
        }
    }
    finish(&mut inbound_part, compile_t, version_t, deps);
    FullCompile {
        total_s: outbound_part.compile_s
            + outbound_part.version_s
            + inbound_part.compile_s
            + inbound_part.version_s,
        outbound: outbound_part,
        inbound: inbound_part,
    }
}

fn workload_key(mesh: &Mesh, s: usize, k: usize) -> ObjKey {
    let key = mesh.service_key(s);
    ObjKey::new(&key.namespace, &format!("{}-{k}", key.name))
}

fn finish(part: &mut Part, compile: Duration, version: Duration, deps: usize) {
    part.compile_s = compile.as_secs_f64();
    part.version_s = version.as_secs_f64();
    let n = part.configs.max(1) as f64;
    part.mean_us = (part.compile_s + part.version_s) * 1e6 / n;
    part.mean_deps = deps as f64 / n;
}
