// Command qtlab brings up an emulated WAN (see package lab) for manual
// experiments: it prints the namespace names and addresses, runs an
// optional command in the client namespace, and removes everything on exit
// or Ctrl-C.
//
//	sudo qtlab -profile=mobile                       # then, in another shell:
//	sudo ip netns exec <server ns> iperf3 -s
//	sudo ip netns exec <client ns> iperf3 -c 10.77.2.1
//	sudo qtlab -profile=wan -server='iperf3 -s' -- iperf3 -c 10.77.2.1 -t 5
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/qtunnel/qtunnel/lab"
)

func main() {
	profile := flag.String("profile", "wan", "link profile: "+strings.Join(lab.ProfileNames(), ", ")+", or none")
	server := flag.String("server", "", "command to run in the server namespace first (e.g. 'iperf3 -s')")
	rtt := flag.Duration("rtt", -1, "override the profile's round-trip delay")
	loss := flag.Float64("loss", -1, "override the profile's loss probability per direction (0.01 = 1%)")
	rate := flag.Float64("rate", -1, "override the profile's rate, Mbit/s (0 = unlimited)")
	jitter := flag.Duration("jitter", -1, "override the profile's jitter")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: qtlab [-profile=NAME] [-server='CMD'] [-- CMD ARGS...]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	var p lab.Params
	if *profile != "none" {
		pr, ok := lab.Profiles[*profile]
		if !ok {
			fmt.Fprintf(os.Stderr, "qtlab: unknown profile %q (want %s or none)\n", *profile, strings.Join(lab.ProfileNames(), ", "))
			os.Exit(2)
		}
		p = pr.Params()
		fmt.Println("profile", pr)
	}
	if *rtt >= 0 {
		p.Delay = *rtt / 2
	}
	if *loss >= 0 {
		p.Loss = *loss
	}
	if *rate >= 0 {
		p.RateBitsPerSec = int64(*rate * 1e6)
	}
	if *jitter >= 0 {
		p.Jitter = *jitter
	}
	fmt.Println("each direction:", p)
	l, err := lab.New(p, p)
	if err != nil {
		fmt.Fprintln(os.Stderr, "qtlab:", err)
		os.Exit(1)
	}
	defer l.Close()
	fmt.Printf("client ns %s (%s)  router ns %s  server ns %s (%s)\n", l.Client, lab.ClientIP, l.Router, l.Server, lab.ServerIP)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *server != "" {
		f := strings.Fields(*server)
		cmd := l.Command(l.Server, f[0], f[1:]...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "qtlab: server command:", err)
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
	if flag.NArg() > 0 {
		cmd := l.Command(l.Client, flag.Arg(0), flag.Args()[1:]...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "qtlab:", err)
		}
	} else {
		fmt.Println("lab is up; Ctrl-C removes it")
		<-ctx.Done()
	}
	up, down := l.Counters()
	fmt.Printf("up: %d packets (%d bytes) delivered, %d lost, %d lost in bursts, %d queue drops; down: %d delivered, %d lost, %d queue drops\n",
		up.Packets.Load(), up.Bytes.Load(), up.LostRandom.Load(), up.LostBurst.Load(), up.LostQueue.Load(),
		down.Packets.Load(), down.LostRandom.Load(), down.LostQueue.Load())
}
