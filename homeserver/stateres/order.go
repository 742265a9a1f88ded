package stateres

import (
	"cmp"
	"container/heap"
	"fmt"
	"strings"
)

// orderKey is an event's place in the spec's two orderings, compared
// field by field: first (the negated sender power level for the reverse
// topological power ordering, the negated mainline position for the
// mainline ordering), then origin_server_ts, then event ID. Event IDs are
// unique, so the order is total.
type orderKey struct {
	first int64
	ts    int64
	id    string
}

func (a orderKey) compare(b orderKey) int {
	if c := cmp.Compare(a.first, b.first); c != 0 {
		return c
	}
	if c := cmp.Compare(a.ts, b.ts); c != 0 {
		return c
	}
	return strings.Compare(a.id, b.id)
}

// kahn returns the lexicographically smallest topological ordering of nodes
// (spec "Reverse topological power ordering"): parents[n] lists the nodes
// that must come before n (n's auth events within the set); among the nodes
// whose parents have all been output, the one with the smallest key goes
// next. Parents outside nodes are ignored. A cycle is an error.
func kahn(nodes []string, parents map[string][]string, keys map[string]orderKey) ([]string, error) {
	in := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		in[n] = true
	}
	pending := make(map[string]int, len(nodes))
	children := make(map[string][]string, len(nodes))
	for _, n := range nodes {
		for _, p := range parents[n] {
			if in[p] {
				pending[n]++
				children[p] = append(children[p], n)
			}
		}
	}
	ready := &keyHeap{}
	for _, n := range nodes {
		if pending[n] == 0 {
			ready.items = append(ready.items, keys[n])
		}
	}
	heap.Init(ready)
	out := make([]string, 0, len(nodes))
	for ready.Len() > 0 {
		n := heap.Pop(ready).(orderKey).id
		out = append(out, n)
		for _, c := range children[n] {
			pending[c]--
			if pending[c] == 0 {
				heap.Push(ready, keys[c])
			}
		}
	}
	if len(out) != len(nodes) {
		var stuck []string
		for _, n := range nodes {
			if pending[n] > 0 {
				stuck = append(stuck, n)
			}
		}
		return nil, fmt.Errorf("%w: %d events never become ready, e.g. %s", ErrAuthCycle, len(stuck), stuck[0])
	}
	return out, nil
}

// keyHeap is a min-heap of order keys for container/heap.
type keyHeap struct{ items []orderKey }

func (h *keyHeap) Len() int           { return len(h.items) }
func (h *keyHeap) Less(i, j int) bool { return h.items[i].compare(h.items[j]) < 0 }
func (h *keyHeap) Swap(i, j int)      { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *keyHeap) Push(x any)         { h.items = append(h.items, x.(orderKey)) }
func (h *keyHeap) Pop() any {
	last := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return last
}
