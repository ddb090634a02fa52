//go:build tools

// Package prometheustool only pins the prometheus command that controlplane.sh builds, so
// that `go mod tidy` keeps its dependencies in go.mod and go.sum.
package prometheustool

import (
	_ "github.com/prometheus/prometheus/cmd/prometheus"
)
