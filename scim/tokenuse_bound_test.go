package scim

import (
	"testing"
	"time"
)

// TestTokenUsesBound: the last uses a process remembers stay within their bound
// (README: at most 10,000 tokens): when full of tokens all seen within
// LastUseInterval, room is made by forgetting the least recently seen one.
func TestTokenUsesBound(t *testing.T) {
	u := newTokenUses(2)
	now := time.Now()
	older, newer := [32]byte{1}, [32]byte{2}
	u.m[older] = &tokenUse{seen: now.Add(-2 * time.Second)}
	u.m[newer] = &tokenUse{seen: now.Add(-time.Second)}
	u.makeRoom(now)
	if len(u.m) >= u.max || u.known(older) || !u.known(newer) {
		t.Errorf("after makeRoom: %d entries (max %d), older kept %v, newer kept %v", len(u.m), u.max, u.known(older), u.known(newer))
	}
}
