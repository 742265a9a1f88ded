package store

import (
	"errors"
	"path/filepath"
	"testing"
)

func openE2EE(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "e2ee.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestClaimKeyOneTimeThenFallback(t *testing.T) {
	s := openE2EE(t)
	otks := []OneTimeKey{{"signed_curve25519", "B", []byte(`{"key":"b"}`)}, {"signed_curve25519", "A", []byte(`{"key":"a"}`)}}
	if err := s.AddOneTimeKeys("@u:x", "D", otks); err != nil {
		t.Fatal(err)
	}
	// The same upload again is a no-op; other content under an ID is refused.
	if err := s.AddOneTimeKeys("@u:x", "D", otks[:1]); err != nil {
		t.Fatal(err)
	}
	if err := s.AddOneTimeKeys("@u:x", "D", []OneTimeKey{{"signed_curve25519", "A", []byte(`{"key":"z"}`)}}); !errors.Is(err, ErrExists) {
		t.Fatalf("conflicting key: %v, want ErrExists", err)
	}
	if err := s.PutFallbackKey("@u:x", "D", OneTimeKey{"signed_curve25519", "F", []byte(`{"key":"f"}`)}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 4 {
		k, err := s.ClaimKey("@u:x", "D", "signed_curve25519")
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, k.KeyID+"="+string(k.JSON))
	}
	want := []string{`A={"key":"a"}`, `B={"key":"b"}`, `F={"key":"f"}`, `F={"key":"f"}`}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("claims %v, want %v", got, want)
		}
	}
	if types, err := s.UnusedFallbackKeyTypes("@u:x", "D"); err != nil || len(types) != 0 {
		t.Fatalf("unused fallback types after use: %v %v", types, err)
	}
	if _, err := s.ClaimKey("@u:x", "D", "curve25519"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("claim of a missing algorithm: %v", err)
	}
}

func TestToDeviceTxnAndAck(t *testing.T) {
	s := openE2EE(t)
	msgs := []ToDevice{{Pos: 5, UserID: "@u:x", DeviceID: "D", Sender: "@s:x", Type: "m.t", Content: []byte(`{}`)},
		{Pos: 6, UserID: "@u:x", DeviceID: "D", Sender: "@s:x", Type: "m.t", Content: []byte(`{"n":2}`)}}
	if fresh, err := s.PutToDevice("c @s:x S", "t1", 1, msgs); err != nil || !fresh {
		t.Fatalf("first put: %v %v", fresh, err)
	}
	if fresh, err := s.PutToDevice("c @s:x S", "t1", 1, []ToDevice{{Pos: 7, UserID: "@u:x", DeviceID: "D", Content: []byte(`{}`)}}); err != nil || fresh {
		t.Fatalf("replayed put: %v %v", fresh, err)
	}
	if err := s.AckToDevice("@u:x", "D", 5); err != nil {
		t.Fatal(err)
	}
	rows, err := s.ToDeviceSince("@u:x", "D", 0, 100)
	if err != nil || len(rows) != 1 || rows[0].Pos != 6 || string(rows[0].Content) != `{"n":2}` {
		t.Fatalf("after ack: %+v %v", rows, err)
	}
	if max, err := s.MaxE2EEPos(); err != nil || max != 6 {
		t.Fatalf("max position %d %v", max, err)
	}
}

func TestDeviceListChangedDropsCache(t *testing.T) {
	s := openE2EE(t)
	if err := s.PutRemoteDeviceKeys("@r:y", []byte(`{"D":{}}`), 3); err != nil {
		t.Fatal(err)
	}
	if b, at, err := s.RemoteDeviceKeys("@r:y"); err != nil || at != 3 || string(b) != `{"D":{}}` {
		t.Fatalf("cached: %s %d %v", b, at, err)
	}
	for want := int64(1); want <= 2; want++ {
		id, err := s.DeviceListChanged("@r:y", 10+want)
		if err != nil || id != want {
			t.Fatalf("stream id %d %v, want %d", id, err, want)
		}
	}
	if _, _, err := s.RemoteDeviceKeys("@r:y"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cache after a change: %v", err)
	}
	if users, err := s.DeviceListsChangedSince(11, 12); err != nil || len(users) != 1 || users[0] != "@r:y" {
		t.Fatalf("changed since: %v %v", users, err)
	}
}
