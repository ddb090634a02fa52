//go:build tools

// Package localpathprovisioner only pins the local-path-provisioner command that
// controlplane.sh builds, so that `go mod tidy` keeps its dependencies in go.mod and go.sum.
package localpathprovisioner

import (
	_ "github.com/rancher/local-path-provisioner"
)
