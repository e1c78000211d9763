package assets

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"testing"
)

var states = []string{StateOff, StateConnecting, StateOn, StateError}

func decode(t *testing.T, name string, b []byte, size int) image.Image {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: not a PNG: %v", name, err)
	}
	if got := img.Bounds(); got.Dx() != size || got.Dy() != size {
		t.Fatalf("%s: size %dx%d, want %dx%d", name, got.Dx(), got.Dy(), size, size)
	}
	return img
}

// opaque counts the pixels that are not fully transparent; an icon that is
// blank or a solid square is wrong.
func opaque(img image.Image) (some, all int) {
	r := img.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if _, _, _, a := img.At(x, y).RGBA(); a != 0 {
				some++
			}
			all++
		}
	}
	return some, all
}

func checkShape(t *testing.T, name string, img image.Image) {
	t.Helper()
	some, all := opaque(img)
	if some < all/10 || some == all {
		t.Errorf("%s: %d of %d pixels not transparent: not an icon on a transparent ground", name, some, all)
	}
}

func TestTrayIcons(t *testing.T) {
	seen := map[string]string{}
	for _, s := range states {
		b := TrayIcon(s)
		checkShape(t, "TrayIcon("+s+")", decode(t, "TrayIcon("+s+")", b, TrayIconSize))
		if other, dup := seen[string(b)]; dup {
			t.Errorf("TrayIcon(%q) is the same image as TrayIcon(%q)", s, other)
		}
		seen[string(b)] = s
	}
}

func TestTrayIconTemplates(t *testing.T) {
	seen := map[string]string{}
	for _, s := range states {
		name := "TrayIconTemplate(" + s + ")"
		b := TrayIconTemplate(s)
		img := decode(t, name, b, TrayIconTemplateSize)
		checkShape(t, name, img)
		r := img.Bounds()
		for y := r.Min.Y; y < r.Max.Y; y++ {
			for x := r.Min.X; x < r.Max.X; x++ {
				c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
				if c.A != 0 && (c.R != 0 || c.G != 0 || c.B != 0) {
					t.Fatalf("%s: pixel (%d,%d) is %v, want black with alpha only", name, x, y, c)
				}
			}
		}
		if other, dup := seen[string(b)]; dup {
			t.Errorf("%s is the same image as TrayIconTemplate(%q)", name, other)
		}
		seen[string(b)] = s
	}
}

func TestUnknownStateFallsBackToOff(t *testing.T) {
	for _, s := range []string{"", "bogus", "ON", "Off "} {
		if !bytes.Equal(TrayIcon(s), TrayIcon(StateOff)) {
			t.Errorf("TrayIcon(%q) is not the off icon", s)
		}
		if !bytes.Equal(TrayIconTemplate(s), TrayIconTemplate(StateOff)) {
			t.Errorf("TrayIconTemplate(%q) is not the off icon", s)
		}
	}
}

func TestAppIcon(t *testing.T) {
	checkShape(t, "AppIcon", decode(t, "AppIcon", AppIcon(), AppIconSize))
}
