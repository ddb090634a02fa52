//go:build tools

// Package actionlinttool only pins the actionlint command that controlplane.sh builds, so
// that `go mod tidy` keeps its dependencies in go.mod and go.sum.
package actionlinttool

import (
	_ "github.com/rhysd/actionlint/cmd/actionlint"
)
