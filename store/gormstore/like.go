package gormstore

import "strings"

// LikePattern escapes lit for LIKE ... ESCAPE '\' and adds the wildcards op needs.
func LikePattern(op, lit string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return wrap(op, r.Replace(lit), "%")
}

// GlobPattern escapes lit for SQLite's case-sensitive GLOB and adds the wildcards op
// needs.
func GlobPattern(op, lit string) string {
	r := strings.NewReplacer(`[`, `[[]`, `*`, `[*]`, `?`, `[?]`)
	return wrap(op, r.Replace(lit), "*")
}

func wrap(op, s, any string) string {
	switch op {
	case "co":
		return any + s + any
	case "sw":
		return s + any
	default: // ew
		return any + s
	}
}
