// Package e2e tests the qtunnel binary as users run it: real processes, real
// sockets on loopback, real TLS and QUIC, with backends and adversaries in
// the test process. It has no code outside its tests.
package e2e
