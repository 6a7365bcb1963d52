//go:build tools

// Package tools pins istio.io/api, whose kubernetes/customresourcedefinitions.gen.yaml holds
// Istio's CRDs. Berth creates Istio AuthorizationPolicies when the platform enables Istio; tests
// install these CRDs to exercise that path against the real API server.
package tools

import _ "istio.io/api/security/v1"
