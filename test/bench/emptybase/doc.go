// Command emptybase waits for a registry to answer and pushes an empty
// base image to it, for test/bench/build.sh: ko needs a base image, and an
// empty one keeps the comparison with ferry's Go images (which have no
// base) fair and off the network.
//
//	emptybase [-wait 30s] [-arch ARCH] HOST:PORT/REPO:TAG
//
// It prints the pushed image as HOST:PORT/REPO@sha256:... on stdout. The
// image is an OCI manifest with no layers and a config that names
// linux/ARCH (default: this machine's).
package main
