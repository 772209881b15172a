package sipside

import (
	"log/slog"
	"os"
	"testing"

	"github.com/emiago/sipgo/sip"
)

func TestMain(m *testing.M) {
	// sipgo logs a few things (for example "TCP ref went negative" while
	// closing) through its package-level default logger, which the library
	// leaves alone; keep test output quiet unless asked.
	if os.Getenv("STOX_TEST_LOG") == "" {
		sip.SetDefaultLogger(slog.New(slog.DiscardHandler))
	}
	os.Exit(m.Run())
}
