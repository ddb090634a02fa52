//go:build tools

// Package coredns only pins the coredns command that controlplane.sh builds, so that
// `go mod tidy` keeps its dependencies in go.mod and go.sum.
package coredns

import (
	_ "github.com/coredns/coredns"
)
