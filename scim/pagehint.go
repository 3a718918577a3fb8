package scim

import (
	"container/list"
	"sync"

	"github.com/scimd/scimd/store"
)

// pageHints remembers where index pages (RFC 7644 §3.4.2.4) in creation order
// ended, so that the next page of a sequential walk — startIndex one past the
// previous page — is read by keyset from that position instead of skipping
// startIndex-1 rows with OFFSET, which grows with every page of a large import.
// A page whose start has no hint (the first, a jump, another replica's walk) is
// read by OFFSET as before. Under concurrent inserts or deletes before the
// position, a hinted page continues exactly after the last resource the walk saw
// where OFFSET would repeat or skip some; index paging promises neither.
type pageHints struct {
	mu  sync.Mutex
	max int
	m   map[hintKey]*list.Element
	lru *list.List // of *hintEntry, most recently used first
}

type hintKey struct {
	tenant string
	kind   ResourceKind
	filter string
	index  int // the startIndex the position precedes
}

type hintEntry struct {
	key   hintKey
	pos   store.Position
	total int // the walk's totalResults so far
}

func newPageHints(max int) *pageHints {
	return &pageHints{max: max, m: make(map[hintKey]*list.Element), lru: list.New()}
}

// take returns and forgets the position before key.index and the walk's total:
// a walk reads each page once, and forgetting keeps the table to the walks in
// progress.
func (h *pageHints) take(key hintKey) (store.Position, int, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e, ok := h.m[key]
	if !ok {
		return store.Position{}, 0, false
	}
	h.lru.Remove(e)
	delete(h.m, key)
	he := e.Value.(*hintEntry)
	return he.pos, he.total, true
}

func (h *pageHints) put(key hintKey, pos store.Position, total int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e, ok := h.m[key]; ok {
		he := e.Value.(*hintEntry)
		he.pos, he.total = pos, total
		h.lru.MoveToFront(e)
		return
	}
	h.m[key] = h.lru.PushFront(&hintEntry{key: key, pos: pos, total: total})
	for h.lru.Len() > h.max {
		old := h.lru.Back()
		h.lru.Remove(old)
		delete(h.m, old.Value.(*hintEntry).key)
	}
}

func (h *pageHints) len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lru.Len()
}
