package homeserver

import (
	"maps"
	"slices"
)

// flights de-duplicates work in progress by key (a room's backfill, a
// user's remote join or invite): a caller that asks for work already in
// flight waits for its result instead of starting it again. On a slow
// link a client that retries a request that outlives its exchange would
// otherwise start the same federation work once per retry.
type flights[T any] map[string]*flight[T]

// flight is one piece of work in progress and the callers waiting for it.
type flight[T any] struct {
	waiting []func(T)
	ended   bool
}

// do answers done with the result of the work under key: the work in
// flight if there is one, else a new one that start runs and ends by
// calling finish (at most once counts).
func (fs flights[T]) do(key string, done func(T), start func(finish func(T))) {
	if f := fs[key]; f != nil {
		f.waiting = append(f.waiting, done)
		return
	}
	f := &flight[T]{waiting: []func(T){done}}
	fs[key] = f
	start(func(v T) {
		if fs[key] == f {
			delete(fs, key)
		}
		f.end(v)
	})
}

// after runs f at once when no work is in flight under key, else when it
// ends.
func (fs flights[T]) after(key string, f func()) {
	if fl := fs[key]; fl != nil {
		fl.waiting = append(fl.waiting, func(T) { f() })
		return
	}
	f()
}

// endAll ends every flight with v, in key order (after a bug cut the work
// short, so no caller waits forever).
func (fs flights[T]) endAll(v T) {
	for _, k := range slices.Sorted(maps.Keys(fs)) {
		f := fs[k]
		delete(fs, k)
		f.end(v)
	}
}

func (f *flight[T]) end(v T) {
	if f.ended {
		return
	}
	f.ended = true
	for _, w := range f.waiting {
		w(v)
	}
}
