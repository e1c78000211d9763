package cert

import (
	"strings"
	"testing"
)

func FuzzParsePin(f *testing.F) {
	f.Add("sha256:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	f.Add("sha256:00:01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:10:11:12:13:14:15:16:17:18:19:1A:1B:1C:1D:1E:1F")
	f.Add("SHA256:00")
	f.Add("sha256 Fingerprint=00:01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:10:11:12:13:14:15:16:17:18:19:1A:1B:1C:1D:1E:1F")
	f.Add("sha256:")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		fp, err := ParsePin(s)
		if err != nil {
			if fp != (Fingerprint{}) {
				t.Fatalf("ParsePin(%q) failed with a non-zero result %s", s, fp)
			}
			if !strings.Contains(err.Error(), "sha256:<64 hex digits>") {
				t.Fatalf("ParsePin(%q) error %q does not say what is wanted", s, err)
			}
			return
		}
		out := fp.String()
		if !pinFormat.MatchString(out) {
			t.Fatalf("String() = %q is not canonical", out)
		}
		again, err := ParsePin(out)
		if err != nil || again != fp {
			t.Fatalf("ParsePin(%q) = %s, %v; want %s", out, again, err, fp)
		}
		// Whatever was accepted holds the same hex digits, in order, after
		// either prefix in any case.
		rest := strings.TrimSpace(s)
		for _, prefix := range []string{"sha256:", "sha256 fingerprint="} {
			if len(rest) >= len(prefix) && strings.EqualFold(rest[:len(prefix)], prefix) {
				rest = rest[len(prefix):]
				break
			}
		}
		if got := strings.ToLower(strings.ReplaceAll(rest, ":", "")); "sha256:"+got != out {
			t.Fatalf("ParsePin(%q) = %s", s, out)
		}
	})
}
