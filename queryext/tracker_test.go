package queryext

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConcurrencyLimiter(t *testing.T) {
	l := newConcurrencyLimiter(2)
	assert.Equal(t, 2, l.GetMaxConcurrent())

	i1, err := l.Insert(context.Background(), "a")
	require.NoError(t, err)
	_, err = l.Insert(context.Background(), "b")
	require.NoError(t, err)

	// Full: a third query waits until its deadline and fails as a timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = l.Insert(ctx, "c")
	var timeout promql.ErrQueryTimeout
	require.ErrorAs(t, err, &timeout)
	assert.EqualError(t, err, "query timed out in query queue")

	// Canceled while waiting.
	ctx, cancel = context.WithCancel(context.Background())
	go func() { time.Sleep(10 * time.Millisecond); cancel() }()
	_, err = l.Insert(ctx, "d")
	var canceled promql.ErrQueryCanceled
	require.ErrorAs(t, err, &canceled)

	// A freed slot lets the next query in.
	done := make(chan error, 1)
	go func() {
		_, err := l.Insert(context.Background(), "e")
		done <- err
	}()
	select {
	case <-done:
		t.Fatal("Insert must block while all slots are taken")
	case <-time.After(20 * time.Millisecond):
	}
	l.Delete(i1)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Insert did not proceed after Delete")
	}
	require.NoError(t, l.Close())
}
