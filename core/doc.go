// Package core is the QTunnel engine as a library. It holds no code of its
// own; its sub-packages each do one job, and dependencies point one way:
//
//	tunnel     Client (local TCP listener -> tunneled streams) and Server
//	           (authenticated streams -> allowed backends); the API that
//	           binaries, services and the tray app drive.
//	transport  QUIC and TLS/TCP carriers: dialing, listening, reconnecting,
//	           pooling, and running the secret-bound authentication.
//	relay      copying bytes between two half-closable connections.
//	auth       the mutual, TLS-session-bound proof of the shared secret.
//	cert       self-signed certificates, loading, fingerprints and pins.
//	secret     where secrets come from, how strong they are, and keeping
//	           them out of logs.
//	proto      the wire format: frames and error codes, pure functions.
//
// Nothing under core imports user-interface or OS-service code.
package core
