package auth

import (
	"errors"
	"testing"
	"time"

	"github.com/qtunnel/qtunnel/core/proto"
)

func earlyAt(t time.Time, nonce byte) proto.EarlyAuthRequest {
	return proto.EarlyAuthRequest{UnixMilli: uint64(t.UnixMilli()), Nonce: [proto.NonceSize]byte{nonce}}
}

func TestReplayGuard(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		steps []struct {
			req  proto.EarlyAuthRequest
			at   time.Time
			want error
		}
	}{
		{"fresh once, then replayed", []struct {
			req  proto.EarlyAuthRequest
			at   time.Time
			want error
		}{
			{earlyAt(now, 1), now, nil},
			{earlyAt(now, 1), now.Add(time.Second), ErrReplayed},
			{earlyAt(now, 2), now, nil},
		}},
		{"time window both ways", []struct {
			req  proto.EarlyAuthRequest
			at   time.Time
			want error
		}{
			{earlyAt(now.Add(-61*time.Second), 1), now, ErrStale},
			{earlyAt(now.Add(61*time.Second), 2), now, ErrStale},
			{earlyAt(now.Add(-59*time.Second), 3), now, nil},
			{earlyAt(now.Add(59*time.Second), 4), now, nil},
		}},
		{"a replay after the window is stale", []struct {
			req  proto.EarlyAuthRequest
			at   time.Time
			want error
		}{
			{earlyAt(now, 1), now, nil},
			{earlyAt(now, 1), now.Add(2 * time.Minute), ErrStale},
		}},
		{"absurd times", []struct {
			req  proto.EarlyAuthRequest
			at   time.Time
			want error
		}{
			{proto.EarlyAuthRequest{UnixMilli: ^uint64(0)}, now, ErrStale},
			{proto.EarlyAuthRequest{UnixMilli: 0}, now, ErrStale},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var g ReplayGuard
			for i, s := range tt.steps {
				if err := g.Check(s.req, s.at); !errors.Is(err, s.want) {
					t.Fatalf("step %d: Check = %v, want %v", i, err, s.want)
				}
			}
		})
	}
}

// TestReplayGuardBounded fills the guard: past Max it refuses until
// remembered nonces expire, and never holds more than Max.
func TestReplayGuardBounded(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	g := ReplayGuard{Max: 100, Window: 10 * time.Second}
	for i := range 100 {
		req := earlyAt(now, 0)
		req.Nonce[0], req.Nonce[1] = byte(i), byte(i>>8)
		if err := g.Check(req, now); err != nil {
			t.Fatalf("nonce %d: %v", i, err)
		}
	}
	extra := earlyAt(now, 0)
	extra.Nonce[2] = 1
	if err := g.Check(extra, now); !errors.Is(err, ErrGuardFull) {
		t.Fatalf("past Max: %v, want ErrGuardFull", err)
	}
	later := now.Add(11 * time.Second)
	extra.UnixMilli = uint64(later.UnixMilli())
	if err := g.Check(extra, later); err != nil {
		t.Fatalf("after the window: %v, want the old nonces forgotten", err)
	}
	if n := len(g.seen); n != 1 {
		t.Fatalf("guard holds %d nonces, want 1", n)
	}
}
