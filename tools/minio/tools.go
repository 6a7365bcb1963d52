//go:build tools

// Package tools pins the MinIO server module for tools/minio/build.sh.
package tools

import _ "github.com/minio/minio"
