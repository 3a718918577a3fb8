package scim

import (
	"testing"

	"github.com/scimd/scimd/store"
)

func TestPageHintsBounded(t *testing.T) {
	h := newPageHints(3)
	for i := range 5 {
		h.put(hintKey{tenant: "t", index: i}, store.Position{ID: string(rune('a' + i))}, 100+i)
	}
	if h.len() != 3 {
		t.Fatalf("%d hints kept, want 3", h.len())
	}
	if _, _, ok := h.take(hintKey{tenant: "t", index: 0}); ok {
		t.Fatal("the least recently used hint was kept")
	}
	p, total, ok := h.take(hintKey{tenant: "t", index: 4})
	if !ok || p.ID != "e" || total != 104 {
		t.Fatalf("newest hint: %v total %d %v", p, total, ok)
	}
	if _, _, ok := h.take(hintKey{tenant: "t", index: 4}); ok {
		t.Fatal("a hint was used twice")
	}
	if _, _, ok := h.take(hintKey{tenant: "other", index: 3}); ok {
		t.Fatal("a hint crossed tenants")
	}
}
