package scrapereceiver

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine outlives them: every server, loop and
// background job a test starts must be stopped by the test.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
