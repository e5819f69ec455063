//! `trellis.dev/v1alpha1`: Trellis' own resources.

pub mod mesh_config;

pub const GROUP: &str = "trellis.dev";
pub const VERSION: &str = "v1alpha1";
