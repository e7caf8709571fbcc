package daemon

import "sync"

// opTracker counts the goroutines the daemon starts (API calls, state
// writes) so that shutdown can wait for them. A sync.WaitGroup cannot be
// used: notifications and reloads start work from their own goroutines at
// any time, and a WaitGroup's Add from zero must not race with its Wait.
// Once stopping, API calls are refused (the shutdown would never end if
// notifications kept starting them); state writes are still let in, and
// waited for, so that what happened is recorded.
type opTracker struct {
	mu       sync.Mutex
	n        int
	stopping bool
	finished bool          // the shutdown is over
	stopped  chan struct{} // closed by stop
	idle     *sync.Cond
}

func newOpTracker() *opTracker {
	t := &opTracker{stopped: make(chan struct{})}
	t.idle = sync.NewCond(&t.mu)
	return t
}

// goAPI runs f in a goroutine unless the daemon is stopping; it reports
// whether f was started.
func (t *opTracker) goAPI(f func()) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopping {
		return false
	}
	t.n++
	go t.run(f)
	return true
}

// goWrite runs f in a goroutine, even while stopping.
func (t *opTracker) goWrite(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n++
	go t.run(f)
}

func (t *opTracker) run(f func()) {
	defer func() {
		t.mu.Lock()
		t.n--
		if t.n == 0 {
			t.idle.Broadcast()
		}
		t.mu.Unlock()
	}()
	f()
}

// stop refuses new API calls from now on.
func (t *opTracker) stop() {
	t.mu.Lock()
	if !t.stopping {
		t.stopping = true
		close(t.stopped)
	}
	t.mu.Unlock()
}

// isStopping reports whether stop was called.
func (t *opTracker) isStopping() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stopping
}

// finish marks the shutdown as over: nothing is to be started any more.
func (t *opTracker) finish() {
	t.mu.Lock()
	t.finished = true
	t.mu.Unlock()
}

// isFinished reports whether finish was called.
func (t *opTracker) isFinished() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.finished
}

// wait returns once no tracked goroutine runs.
func (t *opTracker) wait() {
	t.mu.Lock()
	for t.n > 0 {
		t.idle.Wait()
	}
	t.mu.Unlock()
}
