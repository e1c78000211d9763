package sharelink

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"strings"

	"rsc.io/qr"
)

// QuietZone is the light border around a QR code, in modules; the
// standard asks for 4 and scanners need it to find the code.
const QuietZone = 4

// qrLevel is error correction level M: about 15% of the code can be
// damaged or hidden (a glare, a cursor) and it still reads, at a size that
// keeps a typical link small enough for a terminal.
const qrLevel = qr.M

// maxPNGScale bounds QRPNG's scale; even the largest code stays a few
// thousand pixels wide.
const maxPNGScale = 32

// Terminal half blocks: each character cell shows two modules, one above
// the other, the upper in the top half of the cell.
const (
	blockFull  = '█' // both modules light
	blockUpper = '▀' // upper light, lower dark
	blockLower = '▄' // upper dark, lower light
	blockNone  = ' ' // both dark
)

// QR returns text as a QR code for a terminal, in Unicode half blocks:
// each line holds two rows of modules, and the code is surrounded by a
// quiet zone of QuietZone modules. Lines end in "\n".
//
// A scanner needs dark modules on a light background. Plain text can only
// choose where the terminal draws its foreground color (a block) and
// where it leaves its background (a space), so the code draws the light
// modules, quiet zone included, as blocks and the dark ones as spaces.
// That is right on a terminal with light text on a dark background, the
// default of most terminals and of every common terminal app on phones.
// On a light theme the code comes out inverted, which some scanners read
// and others do not; QRPNG is the fallback there. Escape codes that force
// colors would fix both, but they break when the output is piped, logged
// or pasted, so the output stays plain.
func QR(text string) (string, error) {
	c, err := encode(text)
	if err != nil {
		return "", err
	}
	n := c.Size + 2*QuietZone
	// light reports a light module at (x, y) of the code with its quiet
	// zone. Below the last row, when the height is odd, nothing is drawn.
	light := func(x, y int) bool {
		return y < n && !c.Black(x-QuietZone, y-QuietZone)
	}
	var b strings.Builder
	b.Grow((n + 1) / 2 * (n*len(string(blockFull)) + 1))
	for y := 0; y < n; y += 2 {
		for x := range n {
			top, bottom := light(x, y), light(x, y+1)
			switch {
			case top && bottom:
				b.WriteRune(blockFull)
			case top:
				b.WriteRune(blockUpper)
			case bottom:
				b.WriteRune(blockLower)
			default:
				b.WriteRune(blockNone)
			}
		}
		b.WriteByte('\n')
	}
	return b.String(), nil
}

// QRPNG returns text as a QR code in a PNG image, black on white with a
// quiet zone of QuietZone modules, each module scale pixels square.
func QRPNG(text string, scale int) ([]byte, error) {
	if scale < 1 || scale > maxPNGScale {
		return nil, fmt.Errorf("QR code scale %d: want 1 to %d pixels per module", scale, maxPNGScale)
	}
	c, err := encode(text)
	if err != nil {
		return nil, err
	}
	// Not c.PNG(): rsc.io/qr v0.2.0's own encoder panics at scale 1
	// ("invalid flate repeat"), and image/png is fast enough here.
	n := (c.Size + 2*QuietZone) * scale
	img := image.NewPaletted(image.Rect(0, 0, n, n), color.Palette{color.White, color.Black})
	for y := range n {
		for x := range n {
			if c.Black(x/scale-QuietZone, y/scale-QuietZone) {
				img.Pix[y*img.Stride+x] = 1
			}
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("encode QR code as PNG: %w", err)
	}
	return buf.Bytes(), nil
}

func encode(text string) (*qr.Code, error) {
	c, err := qr.Encode(text, qrLevel)
	if err != nil {
		// Almost always a text too long for the largest code. The text
		// may be a link with a secret: say how long, not what.
		return nil, fmt.Errorf("%d bytes do not fit in a QR code: %w", len(text), err)
	}
	return c, nil
}
