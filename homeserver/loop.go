package homeserver

import (
	"errors"
	"sync"
)

// ErrLoopClosed is returned by Loop.Post once the loop has been closed.
var ErrLoopClosed = errors.New("homeserver: loop closed")

// Loop runs posted functions one at a time, in posting order, on the
// goroutine that calls Run. It is how real mode serialises everything that
// touches a Node: HTTP handlers, socket readers and timer callbacks post
// work into it. Post and Close are safe for concurrent use.
type Loop struct {
	mu     sync.Mutex
	queue  []func()
	wake   chan struct{}
	closed bool
	done   chan struct{}
}

// NewLoop returns a loop that is not yet running.
func NewLoop() *Loop {
	return &Loop{wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// Post queues f to run on the loop. It never blocks.
func (l *Loop) Post(f func()) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrLoopClosed
	}
	l.queue = append(l.queue, f)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	return nil
}

// Run executes posted functions until Close is called and everything
// posted before it has run.
func (l *Loop) Run() {
	defer close(l.done)
	var batch []func()
	for {
		l.mu.Lock()
		batch, l.queue = l.queue, batch[:0]
		closed := l.closed
		l.mu.Unlock()
		for i, f := range batch {
			f()
			batch[i] = nil
		}
		if len(batch) == 0 {
			if closed {
				return
			}
			<-l.wake
		}
	}
}

// Close stops accepting work; Run returns once the queue is drained. It
// returns a channel closed when Run has returned.
func (l *Loop) Close() <-chan struct{} {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	return l.done
}
