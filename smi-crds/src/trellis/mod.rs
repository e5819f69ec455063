//! `trellis.dev/v1alpha1`: Trellis' own resources.
//!
//! - [`canary`]: `Canary`, progressive delivery between two backends of one Service
//!   (namespaced).
//! - [`mesh_config`]: `MeshConfig`, the mesh-wide settings (cluster-scoped).
//! - [`traffic_policy`]: `TrafficPolicy`, timeouts, retries, circuit breaking, load
//!   balancing, faults, rate limits and mirroring for one Service (namespaced).

pub mod canary;
pub mod mesh_config;
pub mod traffic_policy;

pub const GROUP: &str = "trellis.dev";
pub const VERSION: &str = "v1alpha1";
