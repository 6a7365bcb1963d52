//go:build tools

// Package tools pins helm.sh/helm/v4, whose cmd/helm is the Helm client Berth's chart is linted,
// rendered, installed, upgraded and uninstalled with in the tests and by `cargo xtask dev`.
package tools

import _ "helm.sh/helm/v4/cmd/helm"
