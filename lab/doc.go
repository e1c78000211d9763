// Package lab emulates wide-area links on one Linux machine, for QTunnel's
// benchmarks and end-to-end tests.
//
// It builds three network namespaces, client — router — server, joined by
// veth pairs. The kernel here has no netem, so the router sends every
// forwarded packet through a TUN device to a link emulator in this process
// (Link), which applies one-way delay and jitter, random and bursty
// (Gilbert-Elliott) loss, a rate limit with a bounded drop-tail queue, and
// reordering, separately per direction and changeable while running, then
// hands the packet back to the kernel to forward on.
//
// Everything it creates is removed by Close, and a Lab left behind by a
// killed process is removed by the next New.
package lab
