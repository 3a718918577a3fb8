package gormstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
)

// Secret returns the server-wide secret called name, creating a random 256-bit one the
// first time. Every replica on the database gets the same value; the first writer
// wins a race.
func (s *Store) Secret(ctx context.Context, name string) ([]byte, error) {
	db := s.db.WithContext(ctx)
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	if err := db.Exec(`INSERT INTO server_secrets (name, value, created) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING`,
		name, hex.EncodeToString(b), now()).Error; err != nil {
		return nil, s.writeErr(err)
	}
	var v string
	if err := db.Raw(`SELECT value FROM server_secrets WHERE name = ?`, name).Scan(&v).Error; err != nil {
		return nil, s.readErr(err)
	}
	out, err := hex.DecodeString(v)
	if err != nil || len(out) == 0 {
		return nil, fmt.Errorf("secret %s is corrupt", name)
	}
	return out, nil
}
