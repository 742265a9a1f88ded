package store

import (
	"errors"
	"testing"
)

// backupKeyCount counts a version's key rows directly, to check the
// key_count the store maintains.
func backupKeyCount(t *testing.T, s *Store, userID string, version int64) int64 {
	t.Helper()
	var n int64
	if err := s.DB.QueryRow(`SELECT COUNT(*) FROM key_backup_keys WHERE user_id = ? AND version = ?`,
		userID, version).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestBackupKeyReplaces(t *testing.T) {
	k := func(verified bool, fmi, fc int64) BackupKey {
		return BackupKey{IsVerified: verified, FirstMessageIndex: fmi, ForwardedCount: fc}
	}
	for _, c := range []struct {
		name     string
		new, old BackupKey
		want     bool
	}{
		{"verified beats unverified despite worse index", k(true, 9, 9), k(false, 0, 0), true},
		{"unverified never beats verified", k(false, 0, 0), k(true, 9, 9), false},
		{"lower index wins", k(false, 1, 5), k(false, 2, 0), true},
		{"higher index loses", k(true, 3, 0), k(true, 2, 5), false},
		{"same index: fewer forwards wins", k(false, 2, 1), k(false, 2, 2), true},
		{"same index: more forwards loses", k(false, 2, 3), k(false, 2, 2), false},
		{"equal keeps the stored key", k(true, 2, 2), k(true, 2, 2), false},
	} {
		if got := c.new.Replaces(c.old); got != c.want {
			t.Errorf("%s: Replaces = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestKeyBackupVersionsAndKeys(t *testing.T) {
	s := openE2EE(t)
	const u, other = "@u:x", "@o:x"
	if _, err := s.KeyBackup(u, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("current backup of a user without one: %v", err)
	}
	if _, _, err := s.PutBackupKeys(u, 1, []BackupKey{{RoomID: "!r", SessionID: "s"}}, 100); !errors.Is(err, ErrNotFound) {
		t.Fatalf("put without a backup: %v", err)
	}
	v1, err := s.CreateKeyBackup(u, "alg", []byte(`{"a":1}`), 100)
	if err != nil || v1 != 1 {
		t.Fatalf("create: %d %v", v1, err)
	}
	if v, err := s.CreateKeyBackup(other, "alg", []byte(`{}`), 100); err != nil || v != 1 {
		t.Fatalf("versions are per user: %d %v", v, err)
	}
	keys := []BackupKey{
		{RoomID: "!a", SessionID: "s1", FirstMessageIndex: 5, ForwardedCount: 1, SessionData: []byte(`{"d":"a1"}`)},
		{RoomID: "!a", SessionID: "s2", FirstMessageIndex: 0, SessionData: []byte(`{"d":"a2"}`)},
		{RoomID: "!b", SessionID: "s1", IsVerified: true, SessionData: []byte(`{"d":"b1"}`)},
	}
	etag, count, err := s.PutBackupKeys(u, v1, keys, 100)
	if err != nil || count != 3 || etag != 1 {
		t.Fatalf("put: etag %d count %d %v", etag, count, err)
	}
	// A worse key changes nothing, the etag included.
	worse := BackupKey{RoomID: "!a", SessionID: "s1", FirstMessageIndex: 6, SessionData: []byte(`{"d":"worse"}`)}
	if e, c, err := s.PutBackupKeys(u, v1, []BackupKey{worse}, 100); err != nil || e != etag || c != 3 {
		t.Fatalf("put worse: etag %d count %d %v", e, c, err)
	}
	// A better one replaces it and moves the etag; a new one counts.
	better := BackupKey{RoomID: "!a", SessionID: "s1", FirstMessageIndex: 5, ForwardedCount: 0, SessionData: []byte(`{"d":"better"}`)}
	fresh := BackupKey{RoomID: "!c", SessionID: "s9", SessionData: []byte(`{"d":"c9"}`)}
	e2, c2, err := s.PutBackupKeys(u, v1, []BackupKey{better, fresh}, 100)
	if err != nil || e2 == etag || c2 != 4 || backupKeyCount(t, s, u, v1) != 4 {
		t.Fatalf("put better: etag %d count %d %v", e2, c2, err)
	}
	got, err := s.BackupKeys(u, v1, "!a", "s1")
	if err != nil || len(got) != 1 || string(got[0].SessionData) != `{"d":"better"}` || got[0].ForwardedCount != 0 {
		t.Fatalf("session after replace: %+v %v", got, err)
	}
	if got, err := s.BackupKeys(u, v1, "!a", ""); err != nil || len(got) != 2 || got[0].SessionID != "s1" || got[1].SessionID != "s2" {
		t.Fatalf("room keys: %+v %v", got, err)
	}
	if got, err := s.BackupKeys(u, v1, "", ""); err != nil || len(got) != 4 || got[2].RoomID != "!b" || !got[2].IsVerified {
		t.Fatalf("all keys: %+v %v", got, err)
	}
	if got, err := s.BackupKeys(u, v1, "!none", ""); err != nil || len(got) != 0 {
		t.Fatalf("keys of a room without any: %+v %v", got, err)
	}

	// A new version becomes current; the old one is read-only.
	v2, err := s.CreateKeyBackup(u, "alg", []byte(`{"a":2}`), 100)
	if err != nil || v2 != 2 {
		t.Fatalf("second create: %d %v", v2, err)
	}
	if _, _, err := s.PutBackupKeys(u, v1, []BackupKey{fresh}, 100); !errors.Is(err, ErrNotCurrentBackup) {
		t.Fatalf("put into the old version: %v", err)
	}
	if b, err := s.KeyBackup(u, 0); err != nil || b.Version != v2 || b.Count != 0 || string(b.AuthData) != `{"a":2}` {
		t.Fatalf("current: %+v %v", b, err)
	}
	if err := s.UpdateKeyBackup(u, v1, []byte(`{"a":"new"}`)); err != nil {
		t.Fatal(err)
	}
	if b, err := s.KeyBackup(u, v1); err != nil || b.Count != 4 || b.ETag != e2 || string(b.AuthData) != `{"a":"new"}` {
		t.Fatalf("old version after auth_data update: %+v %v", b, err)
	}

	// Deleting keys from the old version is allowed and counted.
	if e, c, err := s.DeleteBackupKeys(u, v1, "!a", ""); err != nil || c != 2 || e == e2 || backupKeyCount(t, s, u, v1) != 2 {
		t.Fatalf("delete room keys: etag %d count %d %v", e, c, err)
	}
	if e, c, err := s.DeleteBackupKeys(u, v1, "!a", "s1"); err != nil || c != 2 || e != e2+1 {
		t.Fatalf("delete a missing key: etag %d count %d %v", e, c, err)
	}

	// Deleting the current version makes the older one current again.
	if err := s.DeleteKeyBackup(u, v2); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteKeyBackup(u, v2); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	if err := s.DeleteKeyBackup(u, 7); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete of a version never made: %v", err)
	}
	if b, err := s.KeyBackup(u, 0); err != nil || b.Version != v1 {
		t.Fatalf("current after delete: %+v %v", b, err)
	}
	if _, err := s.KeyBackup(u, v2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted version: %v", err)
	}
	if err := s.UpdateKeyBackup(u, v2, []byte(`{}`)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update of a deleted version: %v", err)
	}
	if err := s.DeleteKeyBackup(u, v1); err != nil {
		t.Fatal(err)
	}
	if backupKeyCount(t, s, u, v1) != 0 {
		t.Fatal("keys survived their version")
	}
	if _, err := s.BackupKeys(u, v1, "", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("keys of a deleted version: %v", err)
	}
	if _, _, err := s.DeleteBackupKeys(u, v1, "", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete keys of a deleted version: %v", err)
	}
	// Numbers are never reused.
	if v3, err := s.CreateKeyBackup(u, "alg", []byte(`{}`), 100); err != nil || v3 != 3 {
		t.Fatalf("create after deletes: %d %v", v3, err)
	}
	// The other user's backup was never touched.
	if b, err := s.KeyBackup(other, 0); err != nil || b.Version != 1 || b.Count != 0 {
		t.Fatalf("other user's backup: %+v %v", b, err)
	}
}

// The caller's limits hold, an upload past them stores nothing, and
// deleted versions leave one row without auth_data behind.
func TestKeyBackupLimitsAndPruning(t *testing.T) {
	s := openE2EE(t)
	const u = "@u:x"
	for i := range 3 {
		if _, err := s.CreateKeyBackup(u, "alg", []byte(`{"secret":1}`), 3); err != nil {
			t.Fatalf("create %d: %v", i+1, err)
		}
	}
	if _, err := s.CreateKeyBackup(u, "alg", []byte(`{}`), 3); !errors.Is(err, ErrBackupLimit) {
		t.Fatalf("fourth live version: %v", err)
	}
	key := func(sid string) BackupKey { return BackupKey{RoomID: "!r", SessionID: sid, SessionData: []byte(`{}`)} }
	if _, c, err := s.PutBackupKeys(u, 3, []BackupKey{key("a"), key("b")}, 2); err != nil || c != 2 {
		t.Fatalf("up to the limit: %d %v", c, err)
	}
	// Replacing a stored key is not adding one.
	better := key("a")
	better.IsVerified = true
	if _, c, err := s.PutBackupKeys(u, 3, []BackupKey{better}, 2); err != nil || c != 2 {
		t.Fatalf("replace at the limit: %d %v", c, err)
	}
	if _, _, err := s.PutBackupKeys(u, 3, []BackupKey{better, key("c")}, 2); !errors.Is(err, ErrBackupLimit) {
		t.Fatalf("past the limit: %v", err)
	}
	if b, err := s.KeyBackup(u, 3); err != nil || b.Count != 2 || backupKeyCount(t, s, u, 3) != 2 {
		t.Fatalf("after a refused upload: %+v %v", b, err)
	}

	// Deleting frees a slot; deleted rows are pruned to the newest, whose
	// auth_data is gone; deleting a pruned version again still succeeds.
	for _, v := range []int64{1, 2} {
		if err := s.DeleteKeyBackup(u, v); err != nil {
			t.Fatal(err)
		}
	}
	rows := func() (n int, auth string) {
		t.Helper()
		if err := s.DB.QueryRow(`SELECT COUNT(*), COALESCE(MAX(auth_data), '') FROM key_backup_versions
			WHERE user_id = ? AND deleted = ?`, u, true).Scan(&n, &auth); err != nil {
			t.Fatal(err)
		}
		return n, auth
	}
	if n, auth := rows(); n != 0 {
		t.Fatalf("deleted rows below the highest version kept: %d (%s)", n, auth)
	}
	if err := s.DeleteKeyBackup(u, 3); err != nil {
		t.Fatal(err)
	}
	if n, auth := rows(); n != 1 || auth != `{}` {
		t.Fatalf("deleted rows: %d, auth_data %s", n, auth)
	}
	if err := s.DeleteKeyBackup(u, 1); err != nil {
		t.Fatalf("second delete of a pruned version: %v", err)
	}
	if err := s.DeleteKeyBackup(u, 4); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete of a version never made: %v", err)
	}
	if v, err := s.CreateKeyBackup(u, "alg", []byte(`{}`), 3); err != nil || v != 4 {
		t.Fatalf("create after deletes: %d %v", v, err)
	}
	if n, _ := rows(); n != 0 {
		t.Fatalf("deleted rows after a create: %d", n)
	}
}
