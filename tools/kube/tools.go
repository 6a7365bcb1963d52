//go:build tools

// Package tools keeps the control-plane commands' packages in this module's go.mod and go.sum,
// so `go build` of the cmd/ packages is fully pinned.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver/app"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	_ "k8s.io/kubernetes/cmd/kube-scheduler/app"
)
