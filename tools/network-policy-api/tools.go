//go:build tools

// Package tools pins sigs.k8s.io/network-policy-api, whose config/crd holds the CRDs of the
// admin-tier network policy API (ClusterNetworkPolicy; AdminNetworkPolicy in v0.1.1). Berth
// writes one admin-tier policy per project where the cluster serves that API; tests install
// these CRDs to exercise that path against the real API server.
package tools

import _ "sigs.k8s.io/network-policy-api/apis"
