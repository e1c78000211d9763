package congestion

// QTunnel fork: a model-based congestion controller in the manner of BBR
// (version 1, as described in draft-cardwell-iccrg-bbr-congestion-control and
// draft-cheng-iccrg-delivery-rate-estimation), written for this fork.
//
// It estimates the path's bottleneck bandwidth (the windowed maximum of
// delivery-rate samples) and its propagation delay (the windowed minimum
// RTT), paces at gain x bandwidth and caps the data in flight at gain x the
// bandwidth-delay product. Unlike Reno and Cubic it does not read random
// loss as congestion, which is what a tunnel over a lossy long link needs.

import (
	"math/rand/v2"
	"time"

	"github.com/quic-go/quic-go/internal/monotime"
	"github.com/quic-go/quic-go/internal/protocol"
	"github.com/quic-go/quic-go/internal/utils"
	"github.com/quic-go/quic-go/qlog"
	"github.com/quic-go/quic-go/qlogwriter"
)

type bbrMode int

const (
	bbrStartup bbrMode = iota
	bbrDrain
	bbrProbeBW
	bbrProbeRTT
)

const (
	bbrHighGain           = 2.885 // 2/ln(2): doubles the sending rate every round in Startup
	bbrCwndGain           = 2.0
	bbrBwWindowRounds     = 10
	bbrMinRTTWindow       = 10 * time.Second
	bbrProbeRTTDuration   = 200 * time.Millisecond
	bbrMinCwndPackets     = 4
	bbrFullBwThreshold    = 1.25 // growth below this for bbrFullBwRounds rounds: the pipe is full
	bbrFullBwRounds       = 3
	bbrAppLimitedInFlight = 0.5 // a packet sent with less than this share of cwnd in flight is app-limited
)

var bbrPacingGainCycle = [...]float64{1.25, 0.75, 1, 1, 1, 1, 1, 1}

// bbrSent is what is remembered of a packet for its delivery-rate sample.
type bbrSent struct {
	sentTime      monotime.Time
	delivered     protocol.ByteCount // bytes delivered when the packet was sent
	deliveredTime monotime.Time      // when that count was last advanced
	firstSentTime monotime.Time      // send time of the packet acked last at that moment
	appLimited    bool
}

// bbrSentRing holds bbrSent entries in increasing packet-number order. Acks
// come mostly in order, so lookups hit near the head and entries leave from
// there; it replaces a map on the per-packet path.
type bbrSentRing struct {
	buf  []bbrSentEntry
	head int
	n    int
}

type bbrSentEntry struct {
	pn   protocol.PacketNumber
	sent bbrSent
	done bool // acked, or reported lost
}

func (r *bbrSentRing) at(i int) *bbrSentEntry { return &r.buf[(r.head+i)%len(r.buf)] }

// push appends an entry; a packet number not above the last one (another
// packet number space, during the handshake) is not tracked.
func (r *bbrSentRing) push(pn protocol.PacketNumber, s bbrSent) {
	if r.n > 0 && pn <= r.at(r.n-1).pn {
		return
	}
	if r.n == len(r.buf) {
		nb := make([]bbrSentEntry, max(64, 2*len(r.buf)))
		for i := range r.n {
			nb[i] = *r.at(i)
		}
		r.buf, r.head = nb, 0
	}
	*r.at(r.n) = bbrSentEntry{pn: pn, sent: s}
	r.n++
}

// take finds pn, marks it done and returns what was recorded.
func (r *bbrSentRing) take(pn protocol.PacketNumber) (bbrSent, bool) {
	lo, hi := 0, r.n
	for lo < hi {
		m := (lo + hi) / 2
		if r.at(m).pn < pn {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == r.n || r.at(lo).pn != pn || r.at(lo).done {
		return bbrSent{}, false
	}
	e := r.at(lo)
	e.done = true
	return e.sent, true
}

// trim drops finished entries from the head, and entries sent before
// stale: packets never reported (lost MTU probes) must not pin the ring.
func (r *bbrSentRing) trim(stale monotime.Time) {
	for r.n > 0 {
		e := r.at(0)
		if !e.done && !e.sent.sentTime.Before(stale) {
			return
		}
		*e = bbrSentEntry{}
		r.head = (r.head + 1) % len(r.buf)
		r.n--
	}
}

func (r *bbrSentRing) reset() { r.head, r.n = 0, 0 }

type bbrBwSample struct {
	round uint64
	bw    Bandwidth
}

type bbrSender struct {
	rttStats  *utils.RTTStats
	connStats *utils.ConnectionStats
	pacer     *pacer
	clock     Clock
	qlogger   qlogwriter.Recorder
	lastState qlog.CongestionState
	rng       *rand.Rand

	maxDatagramSize protocol.ByteCount
	cwnd            protocol.ByteCount
	initialCwnd     protocol.ByteCount

	mode             bbrMode
	pacingRateCached Bandwidth
	pacingGain       float64
	cwndGain         float64
	cycleIndex       int
	cycleStamp       monotime.Time

	// delivery-rate estimation
	sent          bbrSentRing
	delivered     protocol.ByteCount
	deliveredTime monotime.Time
	firstSentTime monotime.Time

	// rounds: a round ends when a packet sent after it began is acked
	round              uint64
	nextRoundDelivered protocol.ByteCount
	roundStart         bool

	// model
	bwSamples     []bbrBwSample // best sample of each recent round
	maxBw         Bandwidth
	minRTT        time.Duration
	minRTTStamp   monotime.Time
	fullBw        Bandwidth
	fullBwRounds  int
	filledPipe    bool
	probeRTTDone  monotime.Time
	probeRTTRound bool
	priorCwnd     protocol.ByteCount
	idleRestart   bool

	// ACK aggregation: acks arrive in bursts (a receiver that batches, a
	// busy host), so the window must hold the bytes acked beyond what the
	// bandwidth explains, or the sender idles between bursts.
	ackEpochStart monotime.Time
	ackEpochAcked protocol.ByteCount
	extraAcked    [2]protocol.ByteCount // max of the previous and the current window of rounds
	extraRound    uint64
}

var (
	_ SendAlgorithm               = &bbrSender{}
	_ SendAlgorithmWithDebugInfos = &bbrSender{}
)

// NewBBRSender makes a BBR-style sender.
func NewBBRSender(
	clock Clock,
	rttStats *utils.RTTStats,
	connStats *utils.ConnectionStats,
	initialMaxDatagramSize protocol.ByteCount,
	qlogger qlogwriter.Recorder,
) *bbrSender {
	b := &bbrSender{
		rttStats:        rttStats,
		connStats:       connStats,
		pacer:           newPacer(),
		clock:           clock,
		qlogger:         qlogger,
		rng:             rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x62627221)),
		maxDatagramSize: initialMaxDatagramSize,
		initialCwnd:     initialCongestionWindow * initialMaxDatagramSize,
	}
	b.cwnd = b.initialCwnd
	b.enterStartup()
	b.connStats.CongestionWindow.Store(uint64(b.cwnd))
	if b.qlogger != nil {
		b.lastState = qlog.CongestionStateSlowStart
		b.qlogger.RecordEvent(qlog.CongestionStateUpdated{State: qlog.CongestionStateSlowStart})
	}
	return b
}

func (b *bbrSender) enterStartup() {
	b.mode = bbrStartup
	b.pacingGain = bbrHighGain
	b.cwndGain = bbrHighGain
	b.refreshPacingRate()
}

// pacingRate is gain x the bandwidth estimate, but never below the initial
// window per RTT: an endpoint that mostly receives (and so only ever sees
// tiny, app-limited samples) must still send its window updates and ACKs
// promptly.
func (b *bbrSender) pacingRate() Bandwidth { return b.pacingRateCached }

// refreshPacingRate recomputes the pacing rate; it is called whenever its
// inputs change, rather than for every packet.
func (b *bbrSender) refreshPacingRate() {
	rtt := b.minRTT
	if rtt <= 0 {
		rtt = b.rttStats.SmoothedRTT()
	}
	if rtt <= 0 {
		rtt = protocol.TimerGranularity
	}
	floor := BandwidthFromDelta(b.initialCwnd, rtt)
	if b.mode == bbrStartup {
		floor = Bandwidth(float64(floor) * bbrHighGain)
	}
	b.pacingRateCached = max(Bandwidth(float64(b.maxBw)*b.pacingGain), floor)
}

func (b *bbrSender) TimeUntilSend(protocol.ByteCount) monotime.Time {
	return b.pacer.TimeUntilSend(b.pacingRate())
}

func (b *bbrSender) HasPacingBudget(now monotime.Time) bool {
	return b.pacer.Budget(now, b.pacingRate()) >= b.maxDatagramSize
}

func (b *bbrSender) CanSend(bytesInFlight protocol.ByteCount) bool {
	return bytesInFlight < b.GetCongestionWindow()
}

func (b *bbrSender) GetCongestionWindow() protocol.ByteCount {
	if b.mode == bbrProbeRTT {
		return min(b.cwnd, bbrMinCwndPackets*b.maxDatagramSize)
	}
	return b.cwnd
}

func (b *bbrSender) InSlowStart() bool { return b.mode == bbrStartup }

func (b *bbrSender) InRecovery() bool { return false }

func (b *bbrSender) MaybeExitSlowStart() {}

func (b *bbrSender) OnPacketSent(sentTime monotime.Time, bytesInFlight protocol.ByteCount, pn protocol.PacketNumber, bytes protocol.ByteCount, isRetransmittable bool) {
	b.pacer.SentPacket(sentTime, bytes, b.pacingRate())
	if !isRetransmittable {
		return
	}
	prior := bytesInFlight - min(bytesInFlight, bytes) // quic-go counts this packet already
	if prior == 0 {
		// A new flight after an idle period: the rate sample must not span the gap.
		b.firstSentTime = sentTime
		b.deliveredTime = sentTime
		b.idleRestart = true
	}
	b.sent.push(pn, bbrSent{
		sentTime:      sentTime,
		delivered:     b.delivered,
		deliveredTime: b.deliveredTime,
		firstSentTime: b.firstSentTime,
		appLimited:    float64(prior) < bbrAppLimitedInFlight*float64(b.cwnd),
	})
}

func (b *bbrSender) OnPacketAcked(pn protocol.PacketNumber, ackedBytes, priorInFlight protocol.ByteCount, eventTime monotime.Time) {
	b.delivered += ackedBytes
	b.deliveredTime = eventTime
	p, ok := b.sent.take(pn)
	b.sent.trim(eventTime.Add(-4 * max(b.rttStats.SmoothedRTT(), b.minRTT, protocol.TimerGranularity)))
	if !ok {
		return
	}
	b.firstSentTime = p.sentTime

	b.roundStart = false
	if p.delivered >= b.nextRoundDelivered {
		b.nextRoundDelivered = b.delivered
		b.round++
		b.roundStart = true
		b.probeRTTRound = true
	}

	// Delivery rate over the longer of the send and ack intervals, so that
	// ack compression cannot inflate it.
	interval := max(p.sentTime.Sub(p.firstSentTime), eventTime.Sub(p.deliveredTime))
	if interval > 0 {
		bw := BandwidthFromDelta(b.delivered-p.delivered, interval)
		if !p.appLimited || bw >= b.maxBw {
			b.updateMaxBw(bw)
		}
	}
	b.updateMinRTT(eventTime)
	b.updateAckAggregation(eventTime, ackedBytes)

	inflight := priorInFlight - min(priorInFlight, ackedBytes)
	if !p.appLimited {
		// An app-limited round says nothing about whether the pipe is full.
		b.checkFullPipe()
	}
	b.checkDrain(inflight)
	b.updateCycle(eventTime, priorInFlight, inflight)
	b.checkProbeRTT(eventTime, inflight)
	b.setCwnd(ackedBytes)
	b.refreshPacingRate()
}

func (b *bbrSender) updateMaxBw(bw Bandwidth) {
	n := len(b.bwSamples)
	if n > 0 && b.bwSamples[n-1].round == b.round {
		if bw > b.bwSamples[n-1].bw {
			b.bwSamples[n-1].bw = bw
		}
	} else {
		b.bwSamples = append(b.bwSamples, bbrBwSample{round: b.round, bw: bw})
	}
	// forget rounds that left the window
	i := 0
	for i < len(b.bwSamples) && b.bwSamples[i].round+bbrBwWindowRounds <= b.round {
		i++
	}
	b.bwSamples = b.bwSamples[i:]
	b.maxBw = 0
	for _, s := range b.bwSamples {
		b.maxBw = max(b.maxBw, s.bw)
	}
}

// bbrExtraAckedRounds is how many rounds an ACK-aggregation sample counts.
const bbrExtraAckedRounds = 5

func (b *bbrSender) updateAckAggregation(now monotime.Time, acked protocol.ByteCount) {
	if b.maxBw == 0 {
		return
	}
	if b.roundStart && b.round >= b.extraRound+bbrExtraAckedRounds {
		b.extraRound = b.round
		b.extraAcked[0], b.extraAcked[1] = b.extraAcked[1], 0
	}
	var expected protocol.ByteCount
	if !b.ackEpochStart.IsZero() {
		expected = protocol.ByteCount(float64(b.maxBw) / float64(BytesPerSecond) * now.Sub(b.ackEpochStart).Seconds())
	}
	if b.ackEpochStart.IsZero() || b.ackEpochAcked <= expected {
		// the acks caught up with the bandwidth: start a new epoch
		b.ackEpochStart, b.ackEpochAcked, expected = now, 0, 0
	}
	b.ackEpochAcked += acked
	extra := min(b.ackEpochAcked-expected, b.cwnd)
	b.extraAcked[1] = max(b.extraAcked[1], extra)
}

func (b *bbrSender) extraAckedMax() protocol.ByteCount {
	return max(b.extraAcked[0], b.extraAcked[1])
}

func (b *bbrSender) updateMinRTT(now monotime.Time) {
	sample := b.rttStats.LatestRTT()
	if !b.rttStats.HasMeasurement() || sample <= 0 { // before a sample RTTStats holds a 100 ms guess
		return
	}
	expired := !b.minRTTStamp.IsZero() && now.Sub(b.minRTTStamp) > bbrMinRTTWindow
	if b.minRTT == 0 || sample <= b.minRTT || expired {
		b.minRTT = sample
		b.minRTTStamp = now
	}
}

func (b *bbrSender) bdp(gain float64) protocol.ByteCount {
	if b.maxBw == 0 || b.minRTT == 0 {
		return b.initialCwnd
	}
	return protocol.ByteCount(gain * float64(b.maxBw) / float64(BytesPerSecond) * b.minRTT.Seconds())
}

// checkFullPipe leaves Startup when the bandwidth stops growing by 25 % a
// round for three rounds.
func (b *bbrSender) checkFullPipe() {
	if b.filledPipe || !b.roundStart {
		return
	}
	if float64(b.maxBw) >= float64(b.fullBw)*bbrFullBwThreshold {
		b.fullBw = b.maxBw
		b.fullBwRounds = 0
		return
	}
	b.fullBwRounds++
	if b.fullBwRounds >= bbrFullBwRounds {
		b.filledPipe = true
	}
}

func (b *bbrSender) checkDrain(inflight protocol.ByteCount) {
	if b.mode == bbrStartup && b.filledPipe {
		b.mode = bbrDrain
		b.pacingGain = 1 / bbrHighGain
		b.cwndGain = bbrHighGain
		b.qlogState(qlog.CongestionStateCongestionAvoidance)
	}
	if b.mode == bbrDrain && inflight <= b.bdp(1) {
		b.enterProbeBW(b.clock.Now())
	}
}

func (b *bbrSender) enterProbeBW(now monotime.Time) {
	b.mode = bbrProbeBW
	b.cwndGain = bbrCwndGain
	// start anywhere in the cycle except the draining phase
	b.cycleIndex = len(bbrPacingGainCycle) - 1 - b.rng.IntN(len(bbrPacingGainCycle)-1)
	b.advanceCycle(now)
}

func (b *bbrSender) advanceCycle(now monotime.Time) {
	b.cycleIndex = (b.cycleIndex + 1) % len(bbrPacingGainCycle)
	b.cycleStamp = now
	b.pacingGain = bbrPacingGainCycle[b.cycleIndex]
}

// updateCycle moves through the gain cycle, a phase lasting about one
// minimum RTT: probing up (1.25) until the pipe holds 1.25 BDP, draining
// (0.75) until it holds no more than one BDP.
func (b *bbrSender) updateCycle(now monotime.Time, priorInFlight, inflight protocol.ByteCount) {
	if b.mode != bbrProbeBW {
		return
	}
	elapsed := now.Sub(b.cycleStamp) > b.minRTT
	switch g := b.pacingGain; {
	case g > 1:
		if elapsed && priorInFlight >= b.bdp(g) {
			b.advanceCycle(now)
		} else if now.Sub(b.cycleStamp) > 2*b.minRTT {
			b.advanceCycle(now) // could not fill: move on rather than stall
		}
	case g < 1:
		if elapsed || inflight <= b.bdp(1) {
			b.advanceCycle(now)
		}
	default:
		if elapsed {
			b.advanceCycle(now)
		}
	}
}

// checkProbeRTT drains the pipe for a moment when the minimum RTT has not
// been seen for bbrMinRTTWindow, so that queues of its own making do not
// hide the path's real delay.
func (b *bbrSender) checkProbeRTT(now monotime.Time, inflight protocol.ByteCount) {
	expired := !b.minRTTStamp.IsZero() && now.Sub(b.minRTTStamp) > bbrMinRTTWindow
	if b.mode != bbrProbeRTT && expired && !b.idleRestart {
		b.mode = bbrProbeRTT
		b.pacingGain = 1
		b.priorCwnd = b.cwnd
		b.probeRTTDone = 0
		b.qlogState(qlog.CongestionStateApplicationLimited)
	}
	b.idleRestart = false
	if b.mode != bbrProbeRTT {
		return
	}
	if b.probeRTTDone.IsZero() && inflight <= bbrMinCwndPackets*b.maxDatagramSize {
		b.probeRTTDone = now.Add(bbrProbeRTTDuration)
		b.probeRTTRound = false
		b.nextRoundDelivered = b.delivered
		return
	}
	if !b.probeRTTDone.IsZero() && b.probeRTTRound && now.After(b.probeRTTDone) {
		b.minRTTStamp = now
		b.cwnd = max(b.cwnd, b.priorCwnd)
		if b.filledPipe {
			b.enterProbeBW(now)
			b.qlogState(qlog.CongestionStateCongestionAvoidance)
		} else {
			b.enterStartup()
			b.qlogState(qlog.CongestionStateSlowStart)
		}
	}
}

// setCwnd grows the window by what was acked, up to gain x BDP.
func (b *bbrSender) setCwnd(acked protocol.ByteCount) {
	target := b.bdp(b.cwndGain) + b.extraAckedMax() + 3*b.maxDatagramSize
	switch {
	case b.filledPipe:
		b.cwnd = min(b.cwnd+acked, target)
	case b.cwnd < target || b.delivered < b.initialCwnd:
		b.cwnd += acked
	}
	b.cwnd = max(b.cwnd, bbrMinCwndPackets*b.maxDatagramSize)
	b.cwnd = min(b.cwnd, protocol.MaxCongestionWindowPackets*b.maxDatagramSize)
	b.connStats.CongestionWindow.Store(uint64(b.cwnd))
}

// OnCongestionEvent notes a lost packet. Random loss is not congestion to
// this model, so the window is left to the bandwidth estimate.
func (b *bbrSender) OnCongestionEvent(pn protocol.PacketNumber, lostBytes, _ protocol.ByteCount) {
	if lostBytes == 0 {
		return // an ECN congestion mark: not used by this model
	}
	b.connStats.PacketsLost.Add(1)
	b.connStats.BytesLost.Add(uint64(lostBytes))
	b.sent.take(pn)
}

func (b *bbrSender) OnSpuriousLoss(protocol.PacketNumber) {}

// OnRetransmissionTimeout starts over when the path went silent: what the
// model knew may no longer hold.
func (b *bbrSender) OnRetransmissionTimeout(packetsRetransmitted bool) {
	if !packetsRetransmitted {
		return
	}
	b.bwSamples = b.bwSamples[:0]
	b.maxBw = 0
	b.extraAcked = [2]protocol.ByteCount{}
	b.ackEpochStart = 0
	b.fullBw, b.fullBwRounds, b.filledPipe = 0, 0, false
	b.cwnd = bbrMinCwndPackets * b.maxDatagramSize
	b.sent.reset()
	b.enterStartup()
	b.connStats.CongestionWindow.Store(uint64(b.cwnd))
	b.qlogState(qlog.CongestionStateSlowStart)
}

func (b *bbrSender) SetMaxDatagramSize(s protocol.ByteCount) {
	if b.cwnd == b.initialCwnd {
		b.cwnd = initialCongestionWindow * s
	}
	b.initialCwnd = initialCongestionWindow * s
	b.maxDatagramSize = s
	b.pacer.SetMaxDatagramSize(s)
	b.refreshPacingRate()
}

func (b *bbrSender) qlogState(s qlog.CongestionState) {
	if b.qlogger == nil || s == b.lastState {
		return
	}
	b.qlogger.RecordEvent(qlog.CongestionStateUpdated{State: s})
	b.lastState = s
}
