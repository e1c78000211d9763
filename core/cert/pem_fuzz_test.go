package cert

import (
	"bytes"
	"encoding/pem"
	"testing"
)

// FuzzPEMToDER reads arbitrary PEM data (a certificate file a user points
// at). PEMToDER must never panic nor change its input; it returns a
// result or an error, never both; a result is a copy, no larger than the
// input, found only where there is a CERTIFICATE header, that survives
// pem.Encode and PEMToDER again, and that a certificate appended after
// the input does not change (the first one wins); and a certificate after
// input that holds no PEM header at all is found.
func FuzzPEMToDER(f *testing.F) {
	certPEM, keyPEM, err := Generate([]string{"fuzz.example", "127.0.0.1"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(certPEM)
	f.Add(append(bytes.Clone(keyPEM), certPEM...))
	f.Add(keyPEM)
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAEC\n"))
	f.Add([]byte("junk before\n-----BEGIN X509 CRL-----\nAA==\n-----END X509 CRL-----\n-----BEGIN CERTIFICATE-----\nAQ==\n-----END CERTIFICATE-----\n"))
	f.Add([]byte{})
	marker := []byte{0xde, 0xad, 0xbe, 0xef}
	markerPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: marker})
	f.Fuzz(func(t *testing.T, data []byte) {
		in := bytes.Clone(data)
		der, err := PEMToDER(data)
		if !bytes.Equal(in, data) {
			t.Fatal("PEMToDER changed its input")
		}
		withMarker := append(append(bytes.Clone(data), '\n'), markerPEM...)
		if err != nil {
			if der != nil {
				t.Fatalf("PEMToDER failed (%v) with a result", err)
			}
			if !bytes.Contains(data, []byte("-----BEGIN")) {
				if got, err := PEMToDER(withMarker); err != nil || !bytes.Equal(got, marker) {
					t.Fatalf("PEMToDER(input + certificate) = %x, %v; want %x", got, err, marker)
				}
			}
			return
		}
		if !bytes.Contains(data, []byte("-----BEGIN CERTIFICATE-----")) {
			t.Fatalf("PEMToDER found %x where there is no CERTIFICATE header", der)
		}
		if len(der) > len(data) {
			t.Fatalf("%d bytes of DER from %d bytes of PEM", len(der), len(data))
		}
		again, err := PEMToDER(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
		if err != nil || !bytes.Equal(again, der) {
			t.Fatalf("PEMToDER(pem.Encode(%x)) = %x, %v", der, again, err)
		}
		if first, err := PEMToDER(withMarker); err != nil || !bytes.Equal(first, der) {
			t.Fatalf("a certificate after the input changed the result from %x to %x, %v", der, first, err)
		}
		if len(der) > 0 {
			der[0] ^= 0xff // a copy: the caller may keep it
			if again, _ := PEMToDER(data); again[0] == der[0] {
				t.Fatal("PEMToDER returned memory that it returns again")
			}
		}
	})
}
