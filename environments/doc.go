// Package environments owns the Target interface, through which a Release
// becomes what runs in an Environment, and its implementations: embedded
// (processes behind ferry's gateway) and kube (a Kubernetes cluster).
package environments
