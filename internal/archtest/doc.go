// Package archtest holds tests that keep the code's shape: every package
// documented, and dependencies pointing one way (binaries and the GUI on
// top of the engine, the engine never importing UI or OS-service code).
package archtest
