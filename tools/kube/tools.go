//go:build tools

// Package tools keeps the control-plane and node commands' packages in this module's go.mod and
// go.sum, so `go build` of the cmd/ packages is fully pinned. tools/build.sh builds the control
// plane; tools/node/build.sh builds the kubelet and kube-proxy of the real node.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver/app"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	_ "k8s.io/kubernetes/cmd/kube-scheduler/app"
	_ "k8s.io/kubernetes/cmd/kubelet/app"
	_ "k8s.io/kubernetes/cmd/kube-proxy/app"
)
