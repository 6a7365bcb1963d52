//go:build tools

// Package tools pins rancher/local-path-provisioner for tools/local-path-provisioner/build.sh.
package tools

import _ "github.com/rancher/local-path-provisioner"
