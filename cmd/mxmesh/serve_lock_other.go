//go:build !unix

package main

// lockDir is a no-op where flock is unavailable; SQLite's own locking
// still guards the database.
func lockDir(dir string) (release func(), err error) { return func() {}, nil }
