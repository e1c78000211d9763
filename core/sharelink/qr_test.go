package sharelink

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"rsc.io/qr"
)

var qrTexts = []string{
	"hi",
	fullLink().String(),
	fullLink().Redacted(),
	"qtunnel://[2001:db8::1]:443?transport=tcp#secret=" + strings.Repeat("A", 600),
}

// bits is a module matrix, true for dark, with the quiet zone.
type bits [][]bool

// wantBits is what a code for text must look like: qr.Code.Black inside
// a light quiet zone.
func wantBits(t *testing.T, text string) bits {
	t.Helper()
	c, err := qr.Encode(text, qr.M)
	if err != nil {
		t.Fatal(err)
	}
	n := c.Size + 2*QuietZone
	m := make(bits, n)
	for y := range m {
		m[y] = make([]bool, n)
		for x := range m[y] {
			m[y][x] = c.Black(x-QuietZone, y-QuietZone)
		}
	}
	return m
}

// parseTerminal reads QR's output back into a module matrix. A block is
// a light module (the terminal's light foreground), a space a dark one;
// the lower half of the last line, below the code, must be empty.
func parseTerminal(t *testing.T, out string) bits {
	t.Helper()
	if !strings.HasSuffix(out, "\n") {
		t.Fatal("output does not end in a newline")
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	n := utf8.RuneCountInString(lines[0])
	if want := (n + 1) / 2; len(lines) != want {
		t.Fatalf("%d lines for a code %d modules wide, want %d", len(lines), n, want)
	}
	m := make(bits, 2*len(lines))
	for i, line := range lines {
		if got := utf8.RuneCountInString(line); got != n {
			t.Fatalf("line %d has %d characters, line 0 has %d", i, got, n)
		}
		top, bottom := make([]bool, 0, n), make([]bool, 0, n)
		for _, r := range line {
			var lightTop, lightBottom bool
			switch r {
			case '█':
				lightTop, lightBottom = true, true
			case '▀':
				lightTop = true
			case '▄':
				lightBottom = true
			case ' ':
			default:
				t.Fatalf("line %d: unexpected character %q", i, r)
			}
			top = append(top, !lightTop)
			bottom = append(bottom, !lightBottom)
		}
		m[2*i], m[2*i+1] = top, bottom
	}
	if len(m) > n {
		// The odd row below the code is drawn as nothing (dark), so that
		// the code's own edge is the quiet zone's.
		for x, dark := range m[n] {
			if !dark {
				t.Fatalf("module %d below the code is drawn", x)
			}
		}
		m = m[:n]
	}
	return m
}

// parsePNG reads QRPNG's image back into a module matrix.
func parsePNG(t *testing.T, b []byte, scale int) bits {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	r := img.Bounds()
	if r.Dx() != r.Dy() || r.Dx()%scale != 0 {
		t.Fatalf("image is %v, not a square of %d-pixel modules", r, scale)
	}
	n := r.Dx() / scale
	m := make(bits, n)
	for y := range m {
		m[y] = make([]bool, n)
		for x := range m[y] {
			// Every pixel of a module must agree.
			dark := isDark(img.At(r.Min.X+x*scale, r.Min.Y+y*scale))
			for dy := range scale {
				for dx := range scale {
					if isDark(img.At(r.Min.X+x*scale+dx, r.Min.Y+y*scale+dy)) != dark {
						t.Fatalf("module (%d,%d) is not one color", x, y)
					}
				}
			}
			m[y][x] = dark
		}
	}
	return m
}

func isDark(c color.Color) bool { return color.GrayModel.Convert(c).(color.Gray).Y < 128 }

func equalBits(t *testing.T, what string, got, want bits) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d rows, want %d", what, len(got), len(want))
	}
	for y := range want {
		if len(got[y]) != len(want[y]) {
			t.Fatalf("%s: row %d has %d modules, want %d", what, y, len(got[y]), len(want[y]))
		}
		for x := range want[y] {
			if got[y][x] != want[y][x] {
				t.Fatalf("%s: module (%d,%d) is dark=%v, want %v", what, x, y, got[y][x], want[y][x])
			}
		}
	}
}

// TestQRMatrix checks the terminal rendering without a decoder: read
// back, it is exactly the code's modules with a light quiet zone, and the
// same as the PNG's.
func TestQRMatrix(t *testing.T) {
	for _, text := range qrTexts {
		want := wantBits(t, text)
		for y := range want {
			for x := range want[y] {
				inZone := x < QuietZone || y < QuietZone || x >= len(want)-QuietZone || y >= len(want)-QuietZone
				if inZone && want[y][x] {
					t.Fatalf("quiet zone module (%d,%d) is dark", x, y)
				}
			}
		}
		out, err := QR(text)
		if err != nil {
			t.Fatal(err)
		}
		term := parseTerminal(t, out)
		equalBits(t, "terminal", term, want)
		for _, scale := range []int{1, 3} {
			b, err := QRPNG(text, scale)
			if err != nil {
				t.Fatal(err)
			}
			equalBits(t, "PNG", parsePNG(t, b, scale), want)
			equalBits(t, "terminal vs PNG", term, parsePNG(t, b, scale))
		}
	}
}

func TestQRErrors(t *testing.T) {
	long := strings.Repeat("secret", 1000)
	if _, err := QR(long); err == nil {
		t.Error("QR accepted 6000 bytes")
	} else if strings.Contains(err.Error(), "secret") {
		t.Errorf("error repeats the text: %v", err)
	}
	if _, err := QRPNG(long, 2); err == nil {
		t.Error("QRPNG accepted 6000 bytes")
	}
	for _, scale := range []int{-1, 0, maxPNGScale + 1} {
		if _, err := QRPNG("x", scale); err == nil {
			t.Errorf("QRPNG accepted scale %d", scale)
		}
	}
}

// TestQRScan decodes the codes with zbarimg (Debian: zbar-tools), if it
// is installed: the PNG, and the terminal rendering as a dark-themed
// terminal shows it.
func TestQRScan(t *testing.T) {
	zbar, err := exec.LookPath("zbarimg")
	if err != nil {
		t.Skip("zbarimg not installed (apt-get install zbar-tools)")
	}
	dir := t.TempDir()
	scan := func(name string, img []byte) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, img, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(zbar, "--quiet", "--raw", "-Sdisable", "-Sqrcode.enable", p).Output()
		if err != nil {
			t.Fatalf("zbarimg %s: %v", name, err)
		}
		return strings.TrimSuffix(string(out), "\n")
	}
	for i, text := range qrTexts {
		b, err := QRPNG(text, 4)
		if err != nil {
			t.Fatal(err)
		}
		if got := scan("png.png", b); got != text {
			t.Errorf("text %d: PNG scans as %q, want %q", i, got, text)
		}
		out, err := QR(text)
		if err != nil {
			t.Fatal(err)
		}
		if got := scan("term.png", terminalPNG(t, parseTerminal(t, out), 4)); got != text {
			t.Errorf("text %d: terminal rendering scans as %q, want %q", i, got, text)
		}
	}
}

// terminalPNG draws a module matrix as a dark-themed terminal would show
// it: blocks in light gray on a near-black background.
func terminalPNG(t *testing.T, m bits, scale int) []byte {
	t.Helper()
	n := len(m) * scale
	img := image.NewGray(image.Rect(0, 0, n, n))
	for y := range n {
		for x := range n {
			v := uint8(0xd0) // a light foreground
			if m[y/scale][x/scale] {
				v = 0x1e // a dark background
			}
			img.SetGray(x, y, color.Gray{Y: v})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
