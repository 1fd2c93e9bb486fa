// Command pause is the sandbox ("pause") process of the pods that
// hack/node.sh's single-node cluster runs: it holds a pod's namespaces
// open and does nothing else until it is told to stop. The project builds
// it itself (static, CGO_ENABLED=0) because nothing here can pull the
// upstream pause image; hack/pause/push makes it an image.
package main
