//go:build tools

// Package tools pins kube-router for tools/node/build.sh. The real node runs it as its
// NetworkPolicy enforcer only (firewall on; routing, service proxy and CNI off).
package tools

import _ "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router"
