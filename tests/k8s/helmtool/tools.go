//go:build tools

// Package helmtool only pins the helm command that controlplane.sh builds, so that
// `go mod tidy` keeps its dependencies in go.mod and go.sum.
package helmtool

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
