package control

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// helperEnv, when set, makes the test binary act as a helper process for
// TestOtherUserRefused instead of running tests.
const helperEnv = "QTUNNEL_CONTROL_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode))
	}
	goleak.VerifyTestMain(m)
}
