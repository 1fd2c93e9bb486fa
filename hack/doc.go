// Package hack holds the build's scripts (shell, run by the Makefile);
// its Go tests check the scripts that guard the code, such as imports.sh
// on fixture modules under testdata.
package hack
