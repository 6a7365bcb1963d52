//go:build tools

// Package tools pins containerd for tools/node/build.sh: the daemon, its runc shim (v2) and ctr,
// which imports Berth's images into the real node.
package tools

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
	_ "github.com/containerd/containerd/v2/cmd/ctr"
)
