// Command promote measures ferry's promotion engine with embedded
// targets: how long a promotion of a release already verified in dev takes
// until staging answers with it, and how long a rollback takes until the
// release before answers again. test/bench/promote.sh builds and runs it;
// see test/bench/README.md for what each figure means.
package main
