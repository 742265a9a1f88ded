package event

// A Memo is a value derived from an Event's immutable fields — the decoded
// content of a power-levels event, say — that is worth computing once per
// Event instead of on every use. The result is stored on the Event itself,
// so it lives exactly as long as the Event does.
//
// Declare Memos as package-level variables: every Memo that is ever used on
// an Event adds one entry to it, so creating Memos on the fly would grow
// Events without bound. A Memo is safe for concurrent use.
type Memo[T any] struct {
	name    string
	compute func(*Event) T
}

// NewMemo returns a Memo whose value for an Event e is compute(e). compute
// must be a pure function of e (it may run more than once for one Event
// when goroutines race; every caller still gets the same stored result),
// and callers must treat the values it returns as read-only, since they are
// shared by every reader of the Event. name is for debugging only.
func NewMemo[T any](name string, compute func(*Event) T) *Memo[T] {
	return &Memo[T]{name: name, compute: compute}
}

// String is the Memo's name.
func (m *Memo[T]) String() string { return m.name }

// memoEntry is one stored Memo value. Entries form an immutable list headed
// by Event.memo; adding one swaps in a new head.
type memoEntry struct {
	key  any // the *Memo[T]
	val  any // its T
	next *memoEntry
}

// Get returns m's value for e, computing and storing it on first use.
func (m *Memo[T]) Get(e *Event) T {
	key := any(m)
	head := e.memo.Load()
	for n := head; n != nil; n = n.next {
		if n.key == key {
			return n.val.(T)
		}
	}
	val := m.compute(e)
	entry := &memoEntry{key: key, val: val}
	for {
		entry.next = head
		if e.memo.CompareAndSwap(head, entry) {
			return val
		}
		// Another reader stored an entry meanwhile; it may be ours.
		newHead := e.memo.Load()
		for n := newHead; n != head; n = n.next {
			if n.key == key {
				return n.val.(T)
			}
		}
		head = newHead
	}
}
