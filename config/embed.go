package config

import "embed"

// CRDs is crd/*.yaml: one CustomResourceDefinition per kind a release
// deploys (the Pipeline kind stays in the repository, not the cluster).
//
//go:embed crd/*.yaml
var CRDs embed.FS
