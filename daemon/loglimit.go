package daemon

import (
	"sort"
	"sync"
	"time"
)

// logLimitEvery is how often one kind of repeated warning is logged.
const logLimitEvery = time.Minute

// logLimiter lets one log line per key through each minute and counts the
// rest, so the next line says how many there were: 3,000 bad requests
// wrote 3,000 WARN lines before (issue 8).
type logLimiter struct {
	mu   sync.Mutex
	keys map[string]*limitedKey
}

type limitedKey struct {
	last  time.Time // when a line was last logged
	count int       // occurrences since, not logged yet
}

// allow counts one occurrence of key and reports whether to log it now,
// with how many occurrences the line stands for (this one included).
func (l *logLimiter) allow(key string, now time.Time) (count int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.keys == nil {
		l.keys = map[string]*limitedKey{}
	}
	k := l.keys[key]
	if k == nil {
		k = &limitedKey{}
		l.keys[key] = k
	}
	k.count++
	if !k.last.IsZero() && now.Sub(k.last) < logLimitEvery {
		return 0, false
	}
	count, k.count, k.last = k.count, 0, now
	return count, true
}

type pendingLog struct {
	reason string
	count  int
}

// due takes the counts whose minute is over and that no line has told yet.
func (l *logLimiter) due(now time.Time) []pendingLog {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []pendingLog
	for key, k := range l.keys {
		if k.count > 0 && now.Sub(k.last) >= logLimitEvery {
			out = append(out, pendingLog{key, k.count})
			k.count, k.last = 0, now
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].reason < out[j].reason })
	return out
}
