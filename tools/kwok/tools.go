//go:build tools

// Package tools pins kwok; tools/build.sh builds sigs.k8s.io/kwok/cmd/kwok from this module.
package tools

import _ "sigs.k8s.io/kwok/pkg/kwok/cmd"
