// Command push makes an OCI image of one static binary (hack/pause) and
// pushes it by digest to a registry, printing the reference pinned by
// digest: hack/node.sh pins containerd's sandbox image to it.
//
//	push -binary FILE -repo HOST:PORT/ferry/pause
//
// The image has the binary as /pause and nothing else, no creation time,
// so the same binary always makes the same digest. A registry on
// loopback is spoken to over plain HTTP, as containerd is told to.
package main
