//go:build tools

// Package tools pins sigs.k8s.io/gateway-api, whose config/crd/standard holds the Gateway API's
// CRDs (standard channel). Berth writes an HTTPRoute for an MLModel exposed with mode gateway;
// the chart's tests install these CRDs to check those routes against the real API.
package tools

import _ "sigs.k8s.io/gateway-api/apis/v1"
