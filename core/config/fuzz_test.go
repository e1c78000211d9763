package config

import (
	"os"
	"reflect"
	"testing"
)

// FuzzParse checks that Parse never panics, that every error it returns
// is an *Error, and that a configuration it accepts survives Format and
// Parse unchanged.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"testdata/client.yaml", "testdata/server.yaml"} {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(client))
	f.Add([]byte(server + "backend: 10.0.0.9:1\n"))
	f.Add([]byte("mode: server\nlisten: :0\nbackend: h:1\nsecret-files: [a, b]\n"))
	for _, tt := range errorCases() {
		if len(tt.yaml) < 4096 {
			f.Add([]byte(tt.yaml))
		}
	}
	const file = "/etc/qtunnel/fuzz.yaml"
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(file, data)
		if err != nil {
			if c != nil {
				t.Fatal("a config with an error")
			}
			list := Errors(err)
			if len(list) == 0 {
				t.Fatalf("no *Error in %v", err)
			}
			for _, e := range list {
				if e.File != file || e.Msg == "" {
					t.Fatalf("bad error %#v", e)
				}
			}
			return
		}
		out := Format(c)
		again, err := Parse(file, out)
		if err != nil {
			t.Fatalf("Parse(Format(c)): %v\ninput:\n%s\nformatted:\n%s", err, data, out)
		}
		if !reflect.DeepEqual(again, c) {
			t.Fatalf("Parse(Format(c)):\n got %+v\nwant %+v\nformatted:\n%s", again, c, out)
		}
	})
}
