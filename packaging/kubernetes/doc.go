// Package kubernetes holds no code: the directory holds QTunnel's
// Kubernetes manifests (kubectl apply -f packaging/kubernetes/), and this
// package's test parses them and checks what they promise (replicas, a
// non-root read-only container without capabilities, health probes, one
// Service on UDP and TCP with client affinity, a configuration qtunnel
// accepts), since kubectl is not available where the tests run.
package kubernetes
