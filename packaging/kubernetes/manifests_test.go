package kubernetes

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/qtunnel/qtunnel/core/config"
)

// The parts of the Kubernetes objects the test looks at; other fields are
// ignored.
type object struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Spec       spec              `yaml:"spec"`
	file       string
}

type spec struct {
	// Deployment
	Replicas *int `yaml:"replicas"`
	Selector struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	} `yaml:"selector"`
	Template struct {
		Metadata struct {
			Labels map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Spec podSpec `yaml:"spec"`
	} `yaml:"template"`
	// Service (its selector is a plain map, read separately)
	Type                  string        `yaml:"type"`
	SessionAffinity       string        `yaml:"sessionAffinity"`
	ExternalTrafficPolicy string        `yaml:"externalTrafficPolicy"`
	Ports                 []servicePort `yaml:"ports"`
}

type servicePort struct {
	Name       string `yaml:"name"`
	Port       int    `yaml:"port"`
	TargetPort string `yaml:"targetPort"`
	Protocol   string `yaml:"protocol"`
}

type podSpec struct {
	SecurityContext struct {
		RunAsNonRoot *bool `yaml:"runAsNonRoot"`
		RunAsUser    *int  `yaml:"runAsUser"`
	} `yaml:"securityContext"`
	Containers []container `yaml:"containers"`
	Volumes    []struct {
		Name      string `yaml:"name"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
		Secret *struct {
			SecretName string `yaml:"secretName"`
			Items      []struct {
				Key  string `yaml:"key"`
				Path string `yaml:"path"`
			} `yaml:"items"`
			DefaultMode *int `yaml:"defaultMode"`
		} `yaml:"secret"`
		EmptyDir *struct{} `yaml:"emptyDir"`
	} `yaml:"volumes"`
}

type container struct {
	Name  string   `yaml:"name"`
	Image string   `yaml:"image"`
	Args  []string `yaml:"args"`
	Env   []struct {
		Name      string  `yaml:"name"`
		Value     *string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
		Protocol      string `yaml:"protocol"`
	} `yaml:"ports"`
	SecurityContext struct {
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		Privileged               *bool `yaml:"privileged"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
			Add  []string `yaml:"add"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	ReadinessProbe *probe        `yaml:"readinessProbe"`
	LivenessProbe  *probe        `yaml:"livenessProbe"`
	VolumeMounts   []volumeMount `yaml:"volumeMounts"`
}

type volumeMount struct {
	Name      string `yaml:"name"`
	MountPath string `yaml:"mountPath"`
}

type probe struct {
	Exec *struct {
		Command []string `yaml:"command"`
	} `yaml:"exec"`
	TimeoutSeconds int `yaml:"timeoutSeconds"`
}

// load parses every document of every file that kubectl apply -f on the
// directory would read, and the Secret's example.
func load(t *testing.T) (applied []object, secretExample object) {
	t.Helper()
	files, err := filepath.Glob("*")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		ext := filepath.Ext(f)
		if ext != ".yaml" && ext != ".yml" && ext != ".json" && f != "secret.yaml.example" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for i := 0; ; i++ {
			var o object
			err := dec.Decode(&o)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: document %d: %v", f, i+1, err)
			}
			o.file = f
			if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
				t.Errorf("%s: document %d: apiVersion, kind and metadata.name are required", f, i+1)
			}
			if o.Metadata.Labels["app.kubernetes.io/name"] != "qtunnel" {
				t.Errorf("%s: %s %s: no label app.kubernetes.io/name: qtunnel", f, o.Kind, o.Metadata.Name)
			}
			if f == "secret.yaml.example" {
				secretExample = o
			} else {
				applied = append(applied, o)
			}
		}
	}
	return applied, secretExample
}

func find(t *testing.T, objs []object, kind string) object {
	t.Helper()
	var found []object
	for _, o := range objs {
		if o.Kind == kind {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d objects of kind %s, want 1", len(found), kind)
	}
	return found[0]
}

func TestManifests(t *testing.T) {
	objs, secretEx := load(t)
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.Kind)
	}
	slices.Sort(kinds)
	if want := []string{"ConfigMap", "Deployment", "PodDisruptionBudget", "Service"}; !slices.Equal(kinds, want) {
		t.Errorf("kubectl apply would create %v, want %v (the Secret is made with kubectl create secret)", kinds, want)
	}
	cm := find(t, objs, "ConfigMap")
	dep := find(t, objs, "Deployment")
	svc := find(t, objs, "Service")

	// The Secret's example: never a real secret, and never applied.
	if secretEx.Kind != "Secret" {
		t.Fatalf("secret.yaml.example holds a %q, want a Secret", secretEx.Kind)
	}
	if len(secretEx.Data) > 0 {
		t.Error("secret.yaml.example has data: values; it shows placeholders only (stringData)")
	}
	for _, k := range []string{"secret", "server.crt", "server.key"} {
		if v := secretEx.StringData[k]; !strings.HasPrefix(v, "REPLACE") {
			t.Errorf("secret.yaml.example: %s is %q, want a REPLACE… placeholder", k, v)
		}
	}

	// The Deployment.
	d := dep.Spec
	if d.Replicas == nil || *d.Replicas < 2 {
		n := "none"
		if d.Replicas != nil {
			n = strconv.Itoa(*d.Replicas)
		}
		t.Errorf("replicas: %s, want 2 or more", n)
	}
	for k, v := range d.Selector.MatchLabels {
		if d.Template.Metadata.Labels[k] != v {
			t.Errorf("the Deployment's selector %s=%s does not match its pods", k, v)
		}
	}
	pod := d.Template.Spec
	if sc := pod.SecurityContext; sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != 65532 {
		t.Errorf("pod securityContext: want runAsNonRoot: true and runAsUser: 65532 (the image's user)")
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Error("container: want runAsNonRoot: true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("container: want allowPrivilegeEscalation: false")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("container: want readOnlyRootFilesystem: true")
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Error("container: privileged")
	}
	if !slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) || len(sc.Capabilities.Add) > 0 {
		t.Errorf("container capabilities: drop %v, add %v; want drop [ALL], add none", sc.Capabilities.Drop, sc.Capabilities.Add)
	}
	if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
		t.Errorf("resources: want cpu and memory requests and a memory limit, got %+v", c.Resources)
	}
	health := []string{"/qtunnel", "health", "-server"}
	for name, p := range map[string]*probe{"readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe} {
		if p == nil || p.Exec == nil || !slices.Equal(p.Exec.Command, health) {
			t.Errorf("%s: want exec %v", name, health)
		} else if p.TimeoutSeconds < 2 {
			t.Errorf("%s: timeoutSeconds %d; the default 1 s is short for starting a process", name, p.TimeoutSeconds)
		}
	}
	for _, a := range c.Args {
		if strings.HasPrefix(strings.TrimLeft(a, "-"), "secret=") {
			t.Errorf("args: %q puts the secret on the command line", a)
		}
	}
	secretFromSecret := false
	for _, e := range c.Env {
		if e.Name == "QTUNNEL_SECRET" {
			if e.Value != nil {
				t.Error("QTUNNEL_SECRET has a value in the manifest; it comes from the Secret")
			}
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil &&
				e.ValueFrom.SecretKeyRef.Name == secretEx.Metadata.Name && e.ValueFrom.SecretKeyRef.Key == "secret" {
				secretFromSecret = true
			}
		}
	}
	if !secretFromSecret {
		t.Errorf("QTUNNEL_SECRET: want it from the Secret %q, key secret", secretEx.Metadata.Name)
	}

	// Container ports: one number, UDP and TCP.
	portOf := map[string]int{}
	protoOf := map[string]string{}
	for _, p := range c.Ports {
		portOf[p.Name], protoOf[p.Name] = p.ContainerPort, p.Protocol
	}
	if len(c.Ports) != 2 || protoOf["quic"] != "UDP" || protoOf["tls"] != "TCP" || portOf["quic"] != portOf["tls"] {
		t.Errorf("container ports %+v: want quic/UDP and tls/TCP on one port number", c.Ports)
	}

	// Volumes: the ConfigMap, the Secret's certificate and key only, a
	// writable /tmp for the control socket.
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	var tlsDir string
	for _, v := range pod.Volumes {
		switch {
		case v.ConfigMap != nil:
			if v.ConfigMap.Name != cm.Metadata.Name || mounts[v.Name] != "/etc/qtunnel" {
				t.Errorf("volume %s: want ConfigMap %s at /etc/qtunnel", v.Name, cm.Metadata.Name)
			}
		case v.Secret != nil:
			tlsDir = mounts[v.Name]
			if v.Secret.SecretName != secretEx.Metadata.Name {
				t.Errorf("volume %s: Secret %q, want %q", v.Name, v.Secret.SecretName, secretEx.Metadata.Name)
			}
			var keys []string
			for _, it := range v.Secret.Items {
				keys = append(keys, it.Key)
			}
			if !slices.Equal(keys, []string{"server.crt", "server.key"}) {
				t.Errorf("volume %s: items %v, want server.crt and server.key only (not the shared secret)", v.Name, keys)
			}
			if v.Secret.DefaultMode == nil || *v.Secret.DefaultMode&0o007 != 0 {
				t.Errorf("volume %s: defaultMode %v; want one others cannot read", v.Name, v.Secret.DefaultMode)
			}
		case v.EmptyDir != nil:
			if mounts[v.Name] != "/tmp" {
				t.Errorf("emptyDir %s mounted at %q, want /tmp", v.Name, mounts[v.Name])
			}
		}
		if _, ok := mounts[v.Name]; !ok {
			t.Errorf("volume %s is not mounted", v.Name)
		}
	}
	if !slices.ContainsFunc(c.VolumeMounts, func(m volumeMount) bool { return m.MountPath == "/tmp" }) {
		t.Error("no writable /tmp: with a read-only root, the control socket (and so the health check) needs one")
	}

	// The Service: LoadBalancer on 443, UDP and TCP, to the named
	// container ports, with client affinity and the client's address kept.
	s := svc.Spec
	if s.Type != "LoadBalancer" {
		t.Errorf("Service type %q, want LoadBalancer", s.Type)
	}
	if s.SessionAffinity != "ClientIP" {
		t.Errorf("sessionAffinity %q, want ClientIP (a QUIC connection lives in one replica)", s.SessionAffinity)
	}
	if s.ExternalTrafficPolicy != "Local" {
		t.Errorf("externalTrafficPolicy %q, want Local (the client's address, for affinity and per-source limits)", s.ExternalTrafficPolicy)
	}
	protos := map[string]bool{}
	for _, p := range s.Ports {
		if p.Port != 443 {
			t.Errorf("Service port %s is %d, want 443", p.Name, p.Port)
		}
		if protoOf[p.TargetPort] != p.Protocol {
			t.Errorf("Service port %s (%s) targets %q, a container port of protocol %q", p.Name, p.Protocol, p.TargetPort, protoOf[p.TargetPort])
		}
		protos[p.Protocol] = true
	}
	if len(s.Ports) != 2 || !protos["UDP"] || !protos["TCP"] {
		t.Errorf("Service ports %+v: want 443 over UDP and over TCP", s.Ports)
	}
	var sel struct {
		Spec struct {
			Selector map[string]string `yaml:"selector"`
		} `yaml:"spec"`
	}
	b, _ := os.ReadFile(svc.file)
	if err := yaml.Unmarshal(b, &sel); err != nil {
		t.Fatal(err)
	}
	if len(sel.Spec.Selector) == 0 {
		t.Error("the Service has no selector")
	}
	for k, v := range sel.Spec.Selector {
		if d.Template.Metadata.Labels[k] != v {
			t.Errorf("the Service's selector %s=%s matches no pod of the Deployment", k, v)
		}
	}

	// The configuration qtunnel reads: valid, listening on the container
	// port, the certificate from the Secret, the secret not from a file.
	conf, ok := cm.Data["server.yaml"]
	if !ok {
		t.Fatal("the ConfigMap has no server.yaml")
	}
	cfg, err := config.Parse("configmap.yaml:server.yaml", []byte(conf))
	if err != nil {
		t.Fatalf("server.yaml: %v", err)
	}
	if cfg.Mode != config.ModeServer || cfg.Transport != "quic" {
		t.Errorf("server.yaml: mode %s, transport %s; want server, quic", cfg.Mode, cfg.Transport)
	}
	if !strings.HasSuffix(cfg.Listen, ":"+strconv.Itoa(portOf["quic"])) {
		t.Errorf("server.yaml listens on %s, the container port is %d", cfg.Listen, portOf["quic"])
	}
	if tlsDir == "" || cfg.CertFile != tlsDir+"/server.crt" || cfg.KeyFile != tlsDir+"/server.key" {
		t.Errorf("server.yaml: cert-file %s, key-file %s; want the Secret's, in %s, shared by every replica", cfg.CertFile, cfg.KeyFile, tlsDir)
	}
	if len(cfg.SecretFiles) > 0 {
		t.Errorf("server.yaml names secret files %v; the secret comes in QTUNNEL_SECRET", cfg.SecretFiles)
	}
	if cfg.Control != "" || cfg.StateDir != "" {
		t.Errorf("server.yaml sets control %q or state-dir %q: the health probe expects the default socket in /tmp", cfg.Control, cfg.StateDir)
	}
}
