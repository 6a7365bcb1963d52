//go:build tools

// Package tools pins etcd's server module; `go build go.etcd.io/etcd/server/v3` builds its main package.
package tools

import _ "go.etcd.io/etcd/server/v3/etcdmain"
