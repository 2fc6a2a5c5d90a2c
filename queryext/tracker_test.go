package queryext

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// waitingCtx is a context that tells when Insert waits on it (Insert asks for Done only in the
// select that blocks until a slot is free) and that the test ends with the error it chooses, so
// that the query is always waiting in the queue when its deadline passes or it is canceled.
type waitingCtx struct {
	context.Context // ended by cancel
	cancel          context.CancelFunc
	waiting         chan struct{}
	once            sync.Once
	err             error // set before cancel; read only after Context.Err is non-nil
}

func newWaitingCtx() *waitingCtx {
	ctx, cancel := context.WithCancel(context.Background())
	return &waitingCtx{Context: ctx, cancel: cancel, waiting: make(chan struct{})}
}

func (c *waitingCtx) Done() <-chan struct{} {
	c.once.Do(func() { close(c.waiting) })
	return c.Context.Done()
}

func (c *waitingCtx) Err() error {
	if c.Context.Err() == nil {
		return nil
	}
	return c.err
}

// end ends the context with err once Insert is waiting on it.
func (c *waitingCtx) end(err error) {
	<-c.waiting
	c.err = err
	c.cancel()
}

func TestConcurrencyLimiter(t *testing.T) {
	l := newConcurrencyLimiter(2)
	assert.Equal(t, 2, l.GetMaxConcurrent())

	i1, err := l.Insert(context.Background(), "a")
	require.NoError(t, err)
	_, err = l.Insert(context.Background(), "b")
	require.NoError(t, err)

	// Full: a third query waits until its deadline and fails as a timeout.
	ctx := newWaitingCtx()
	go ctx.end(context.DeadlineExceeded)
	_, err = l.Insert(ctx, "c")
	var timeout promql.ErrQueryTimeout
	require.ErrorAs(t, err, &timeout)
	assert.EqualError(t, err, "query timed out in query queue")

	// Canceled while waiting.
	ctx = newWaitingCtx()
	go ctx.end(context.Canceled)
	_, err = l.Insert(ctx, "d")
	var canceled promql.ErrQueryCanceled
	require.ErrorAs(t, err, &canceled)

	// A query whose context has already ended does not wait for a slot.
	expired, cancel := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancel()
	_, err = l.Insert(expired, "expired")
	require.ErrorAs(t, err, &timeout)

	// A freed slot lets the next query in.
	ctx = newWaitingCtx()
	done := make(chan error, 1)
	go func() {
		_, err := l.Insert(ctx, "e")
		done <- err
	}()
	<-ctx.waiting
	select {
	case <-done:
		t.Fatal("Insert must block while all slots are taken")
	default:
	}
	l.Delete(i1)
	require.NoError(t, <-done, "Insert proceeds after Delete")
	require.NoError(t, l.Close())
}
