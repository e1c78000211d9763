// Command mkimage builds QTunnel's container image without a container
// engine: one layer on top of nothing (FROM scratch) holding the static
// qtunnel binary that make release builds, /etc/passwd and /etc/group
// entries for an unprivileged user, the build host's CA bundle, a default
// server configuration and the directories the server writes to. It writes
// a `docker save` tarball (docker load, podman load, skopeo
// docker-archive:) per architecture. `make image` runs it; see
// packaging/container/README.md.
//
// The output is reproducible: every file and the image's creation time get
// the same timestamp (SOURCE_DATE_EPOCH, the last commit's time in make
// image), files are in a fixed order with numeric owners only, and gzip
// carries no time, so two builds of one tree give the same digest.
package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The unprivileged user the image runs as. 65532 is the "nonroot" user of
// the distroless images, which many cluster policies already expect.
const (
	uid      = 65532
	userName = "qtunnel"
	stateDir = "/var/lib/qtunnel"
	binPath  = "/qtunnel"
	confPath = "/etc/qtunnel/server.yaml"
	caPath   = "/etc/ssl/certs/ca-certificates.crt"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

type options struct {
	bin      string // the linux binary for arch
	arch     string
	version  string
	revision string
	source   string
	config   string // the default server.yaml
	caCerts  string // "" or "none": no CA bundle
	epoch    int64
	tag      string
	out      string
	user     string
}

func run(args []string, stdout io.Writer) error {
	var o options
	fs := flag.NewFlagSet("mkimage", flag.ContinueOnError)
	fs.StringVar(&o.bin, "bin", "", "the static linux qtunnel binary (default dist/linux-ARCH/qtunnel)")
	fs.StringVar(&o.arch, "arch", "amd64", "the binary's architecture: amd64 or arm64")
	fs.StringVar(&o.version, "version", "", "the version (git describe), for the tag and the version label")
	fs.StringVar(&o.revision, "revision", "", "the commit, for the revision label")
	fs.StringVar(&o.source, "source", "https://github.com/qtunnel/qtunnel", "the source label")
	fs.StringVar(&o.config, "config", "packaging/container/server.yaml", "the default configuration, put at "+confPath)
	fs.StringVar(&o.caCerts, "ca-certs", caPath, `the CA bundle to copy into the image ("none": none; the masquerade proxy and a client's -ca=system need one)`)
	fs.Int64Var(&o.epoch, "epoch", -1, "the time of every file and of the image, in seconds since 1970 (default $SOURCE_DATE_EPOCH)")
	fs.StringVar(&o.tag, "tag", "", "the image's name in the tarball (default qtunnel:VERSION)")
	fs.StringVar(&o.user, "user", strconv.Itoa(uid)+":"+strconv.Itoa(uid), "the user the image runs as (make image-test builds a root image to see its check fail)")
	fs.StringVar(&o.out, "out", "", "the tarball to write (default dist/qtunnel-image-ARCH.tar)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.arch != "amd64" && o.arch != "arm64" {
		return fmt.Errorf("-arch=%s: want amd64 or arm64", o.arch)
	}
	if o.version == "" {
		return errors.New("-version is required (git describe --tags --always --dirty)")
	}
	if o.epoch < 0 {
		s := os.Getenv("SOURCE_DATE_EPOCH")
		if s == "" {
			return errors.New("-epoch or SOURCE_DATE_EPOCH is required, so that the image is reproducible")
		}
		e, err := strconv.ParseInt(s, 10, 64)
		if err != nil || e < 0 {
			return fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970", s)
		}
		o.epoch = e
	}
	if o.bin == "" {
		o.bin = filepath.Join("dist", "linux-"+o.arch, "qtunnel")
	}
	if o.tag == "" {
		o.tag = "qtunnel:" + o.version
	}
	if o.out == "" {
		o.out = filepath.Join("dist", "qtunnel-image-"+o.arch+".tar")
	}
	tag, err := name.NewTag(o.tag)
	if err != nil {
		return fmt.Errorf("-tag=%s: %w", o.tag, err)
	}

	img, layerSize, err := build(&o)
	if err != nil {
		return err
	}
	if err := writeTarball(o.out, tag, img); err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	id, err := img.ConfigName()
	if err != nil {
		return err
	}
	fi, err := os.Stat(o.out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %s linux/%s\n  manifest digest %s\n  image ID        %s\n  layer %.1f MiB unpacked, tarball %.1f MiB\n",
		o.out, tag, o.arch, digest, id, mib(layerSize), mib(fi.Size()))
	return nil
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// build makes the image: the layer, then the configuration.
func build(o *options) (v1.Image, int64, error) {
	created := time.Unix(o.epoch, 0).UTC()
	layerTar, err := layerFiles(o, created)
	if err != nil {
		return nil, 0, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return nil, 0, err
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: created},
			CreatedBy: "tools/mkimage: " + binPath + ", /etc/passwd, /etc/group, " + confPath + ", CA certificates, " + stateDir + ", /tmp",
			Comment:   "built without a container engine by QTunnel's make image",
		},
	})
	if err != nil {
		return nil, 0, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, 0, err
	}
	cf = cf.DeepCopy()
	cf.Architecture = o.arch
	cf.OS = "linux"
	cf.Created = v1.Time{Time: created}
	cf.Config = imageConfig(o, created)
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, 0, err
	}
	return img, int64(len(layerTar)), nil
}

// imageConfig is what a container of the image runs, and how.
func imageConfig(o *options, created time.Time) v1.Config {
	labels := map[string]string{
		"org.opencontainers.image.title":       "qtunnel",
		"org.opencontainers.image.description": "QTunnel: TCP over QUIC, authenticated both ways with a shared secret",
		"org.opencontainers.image.version":     o.version,
		"org.opencontainers.image.source":      o.source,
		"org.opencontainers.image.created":     created.Format(time.RFC3339),
	}
	if o.revision != "" {
		labels["org.opencontainers.image.revision"] = o.revision
	}
	return v1.Config{
		User:       o.user,
		Entrypoint: []string{binPath},
		Cmd:        []string{"-config=" + confPath},
		// The default configuration listens on 443: QUIC on UDP, and TCP
		// for clients falling back from blocked UDP and for the web site
		// strangers see.
		ExposedPorts: map[string]struct{}{"443/udp": {}, "443/tcp": {}},
		Env: []string{
			"PATH=/",
			// Where the server keeps its generated certificate when it is
			// given none (mount a volume there to keep it, and its pin).
			"STATE_DIRECTORY=" + stateDir,
		},
		WorkingDir: "/",
		Labels:     labels,
		StopSignal: "SIGTERM",
		// qtunnel health asks the server on its control socket (the
		// per-user default, /tmp/qtunnel-65532/server.sock) whether it is
		// serving.
		Healthcheck: &v1.HealthConfig{
			Test:        []string{"CMD", binPath, "health", "-server"},
			Interval:    30 * time.Second,
			Timeout:     10 * time.Second,
			StartPeriod: 10 * time.Second,
			Retries:     3,
		},
	}
}

// file is one entry of the layer.
type file struct {
	path string // absolute
	mode int64  // permission bits, and 01000 (sticky) for /tmp
	uid  int
	dir  bool
	data []byte
}

func layerFiles(o *options, mtime time.Time) ([]byte, error) {
	bin, err := os.ReadFile(o.bin)
	if err != nil {
		return nil, fmt.Errorf("the binary: %w (run make release, or make image, which builds it)", err)
	}
	if err := checkELF(bin, o.arch); err != nil {
		return nil, fmt.Errorf("%s: %w", o.bin, err)
	}
	conf, err := os.ReadFile(o.config)
	if err != nil {
		return nil, fmt.Errorf("the default configuration: %w", err)
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\n%s:x:%d:%d:QTunnel:%s:/sbin/nologin\n", userName, uid, uid, stateDir)
	group := fmt.Sprintf("root:x:0:\n%s:x:%d:\n", userName, uid)
	files := []file{
		{path: binPath, mode: 0o755, data: bin},
		{path: "/etc", mode: 0o755, dir: true},
		{path: "/etc/group", mode: 0o644, data: []byte(group)},
		{path: "/etc/passwd", mode: 0o644, data: []byte(passwd)},
		{path: "/etc/qtunnel", mode: 0o755, dir: true},
		{path: confPath, mode: 0o644, data: conf},
	}
	if o.caCerts != "" && o.caCerts != "none" {
		ca, err := os.ReadFile(o.caCerts)
		if err != nil {
			return nil, fmt.Errorf("the CA bundle: %w (install ca-certificates, or give -ca-certs=none)", err)
		}
		files = append(files,
			file{path: "/etc/ssl", mode: 0o755, dir: true},
			file{path: "/etc/ssl/certs", mode: 0o755, dir: true},
			file{path: caPath, mode: 0o644, data: ca},
		)
	}
	files = append(files,
		// The control socket's default directory for a user without
		// XDG_RUNTIME_DIR is /tmp/qtunnel-UID.
		file{path: "/tmp", mode: 0o1777, dir: true},
		file{path: "/var", mode: 0o755, dir: true},
		file{path: "/var/lib", mode: 0o755, dir: true},
		file{path: stateDir, mode: 0o700, uid: uid, dir: true},
	)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{
			Name:    strings.TrimPrefix(f.path, "/"),
			Mode:    f.mode,
			Uid:     f.uid,
			Gid:     f.uid,
			ModTime: mtime,
			Format:  tar.FormatPAX,
		}
		if f.dir {
			h.Typeflag = tar.TypeDir
			h.Name += "/"
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// checkELF refuses a binary of the wrong architecture or one that is not
// static (a scratch image has no dynamic loader).
func checkELF(b []byte, arch string) error {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("not an ELF binary (a linux build is needed): %w", err)
	}
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]
	if f.Machine != want {
		return fmt.Errorf("built for %v, not %s", f.Machine, arch)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errors.New("dynamically linked (build with CGO_ENABLED=0, as make release does)")
		}
	}
	return nil
}

// writeTarball writes the docker save tarball through a temporary file, so
// that a failed build leaves no half tarball behind.
func writeTarball(path string, tag name.Tag, img v1.Image) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".mkimage-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tarball.Write(tag, img, tmp); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
