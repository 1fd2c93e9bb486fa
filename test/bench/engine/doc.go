// Command engine measures ferry serve end to end on this machine: how long
// a pushed commit takes to answer at the gateway, by webhook and by
// polling, and what watching many sources costs; with -storm, a storm of
// commits (storm.go); with -previews, pull-request previews (previews.go).
// test/bench/engine.sh, storm.sh and previews.sh build ferry and run it;
// see test/bench/README.md for the figures.
package main
