package store

import (
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// schema dumps the database's schema (tables, indexes, triggers, views)
// in a stable order, for comparing an upgraded database with a fresh one.
func schema(t *testing.T, s *Store) string {
	t.Helper()
	rows, err := s.DB.Query(`SELECT type, name, COALESCE(sql, '') FROM sqlite_master ORDER BY type, name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var typ, name, text string
		if err := rows.Scan(&typ, &name, &text); err != nil {
			t.Fatal(err)
		}
		b.WriteString(typ + " " + name + ": " + strings.Join(strings.Fields(text), " ") + "\n")
	}
	return b.String()
}

func TestMigrationsUpgradeFromEveryVersion(t *testing.T) {
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 {
		t.Fatal("no migrations embedded")
	}
	dir := t.TempDir()
	fresh, err := Open(filepath.Join(dir, "fresh.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	want := schema(t, fresh)
	if v, _ := fresh.Version(); v != len(ms) {
		t.Fatalf("fresh version %d, want %d", v, len(ms))
	}
	for from := 0; from < len(ms); from++ {
		path := filepath.Join(dir, "from"+ms[from].Name+".db")
		old, err := OpenAt(path, from)
		if err != nil {
			t.Fatalf("build schema %d: %v", from, err)
		}
		if v, _ := old.Version(); v != from {
			t.Fatalf("OpenAt(%d) gave version %d", from, v)
		}
		old.Close()
		up, err := Open(path)
		if err != nil {
			t.Fatalf("upgrade from %d: %v", from, err)
		}
		if got := schema(t, up); got != want {
			t.Errorf("upgrade from %d gives a different schema:\n%s\nwant\n%s", from, got, want)
		}
		up.Close()
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB.Exec(`INSERT INTO schema_migrations (version, name) VALUES (9999, 'future')`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("got %v, want newer-schema error", err)
	}
}

func TestCorruptDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	if err := os.WriteFile(path, []byte(strings.Repeat("this is not sqlite ", 300)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path)
	if err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("got %v, want a corrupt-database error", err)
	}
}

func TestLockedDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	// Hold the write lock from another connection while a fresh database
	// needs its schema written.
	other, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	other.SetMaxOpenConns(1)
	if _, err := other.Exec(`CREATE TABLE hold (x INTEGER)`); err != nil {
		t.Fatal(err)
	}
	tx, err := other.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`INSERT INTO hold VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	_, err = Open(path)
	if err == nil || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("got %v, want a locked-database error", err)
	}
}

func TestAccountsAndDevices(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateAccount(Account{UserID: "@a:x", PasswordHash: "h", CreatedTS: 5}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAccount(Account{UserID: "@a:x"}); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate: %v", err)
	}
	if _, err := s.Account("@b:x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	if err := s.SetPassword("@b:x", "h"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("set password on missing: %v", err)
	}
	name := "phone"
	if err := s.PutDevice(Device{UserID: "@a:x", DeviceID: "D1", DisplayName: &name, TokenHash: "t1"}); err != nil {
		t.Fatal(err)
	}
	// Re-login on the same device: new token, name kept.
	if err := s.PutDevice(Device{UserID: "@a:x", DeviceID: "D1", TokenHash: "t2", LastSeenTS: 9}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeviceByToken("t1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("old token still valid: %v", err)
	}
	d, err := s.DeviceByToken("t2")
	if err != nil || d.DisplayName == nil || *d.DisplayName != "phone" || d.LastSeenTS != 9 {
		t.Fatalf("device: %+v %v", d, err)
	}
	// A device must belong to an existing account (foreign keys are on).
	if err := s.PutDevice(Device{UserID: "@ghost:x", DeviceID: "D", TokenHash: "t3"}); err == nil {
		t.Fatal("device for a missing account accepted")
	}
	if err := s.PutDevice(Device{UserID: "@a:x", DeviceID: "D2", TokenHash: "t4"}); err != nil {
		t.Fatal(err)
	}
	devs, err := s.Devices("@a:x")
	if err != nil || len(devs) != 2 || devs[0].DeviceID != "D1" || devs[1].DeviceID != "D2" {
		t.Fatalf("devices: %+v %v", devs, err)
	}
	hashes, err := s.DeleteDevices("@a:x", []string{"D2", "NONE"})
	if err != nil || len(hashes) != 1 || hashes[0] != "t4" {
		t.Fatalf("delete: %v %v", hashes, err)
	}
	if err := s.SetDeviceName("@a:x", "D2", "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("rename deleted: %v", err)
	}
}
