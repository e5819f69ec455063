//! Kubernetes mode (`trellis operator --kube`): the adapter between the API server and the
//! pure core (index, compile, conditions).
