module berth.dev/tools/network-policy-api

go 1.26.6

require sigs.k8s.io/network-policy-api v0.3.0

// Also extracted: the release before ClusterNetworkPolicy, with AdminNetworkPolicy v1alpha1,
// which most enforcers still implement. Its two go.sum lines pin it; tools/build.sh reads the
// version from the next line. Keep those lines when tidying.
// legacy sigs.k8s.io/network-policy-api v0.1.1
