// Command scimmutate measures how many behaviour changes the tests catch: it makes
// small changes (mutants) to the code of the target packages one at a time and runs,
// for each, exactly the tests whose coverage reaches the changed code, in whichever
// package of the module they live. A mutant that makes a test fail is killed; one
// that every covering test passes survived; one that no test reaches is not covered.
//
// Most of scimd's behaviour is tested end to end by the tests of cmd/scimd, so a
// mutant must be run against the tests of other packages, chosen by coverage: running
// only the mutant's own package misses most kills, and running the whole suite for
// every mutant takes days. scimmutate builds a map from coverage blocks to top-level
// tests once (cached under bin/mutate/ by a hash of the sources), then applies each
// mutant through `go test -overlay`, so the working tree is never modified.
//
// Usage (see `make mutate` and the README's "Mutation testing" section):
//
//	scimmutate [-pkgs ./scim,./compat] [-budget 30m] [-sample N] [-seed S] [-workers 1]
//	scimmutate -list
//	scimmutate -only 'scim/patch.go:92:14:CONDITIONALS_NEGATION'
package main
