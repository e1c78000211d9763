//go:build race

package lab

// raceEnabled: the race detector slows the emulator's pump several times
// over, so the timing self-check runs in its own build without it.
const raceEnabled = true
