//! Sidecar injection: what the mutating webhook and `trellis inject` do to a pod template.
