//go:build race

package hnsw

// raceEnabled shrinks the heaviest tests: the race detector slows them
// about tenfold.
const raceEnabled = true
