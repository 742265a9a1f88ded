package store

import (
	"errors"
	"slices"
	"testing"
)

func TestPushers(t *testing.T) {
	s := openTemp(t)
	for _, u := range []string{"@a:x", "@b:x"} {
		if err := s.CreateAccount(Account{UserID: u}); err != nil {
			t.Fatal(err)
		}
		for _, d := range []string{"D1", "D2"} {
			if err := s.PutDevice(Device{UserID: u, DeviceID: d, TokenHash: u + d}); err != nil {
				t.Fatal(err)
			}
		}
	}
	p := Pusher{UserID: "@a:x", AppID: "app", PushKey: "k1", DeviceID: "D1", Kind: "http",
		AppDisplayName: "App", DeviceDisplayName: "Phone", Lang: "en", Data: []byte(`{"url":"u"}`), PushKeyTS: 5}
	if err := s.SetPusher(p, false, 20); err != nil {
		t.Fatal(err)
	}
	// Same app and key for another user with append: both stay.
	q := p
	q.UserID, q.DeviceID = "@b:x", "D1"
	if err := s.SetPusher(q, true, 20); err != nil {
		t.Fatal(err)
	}
	// An update of a's pusher replaces it.
	p.Lang, p.PushKeyTS = "de", 7
	if err := s.SetPusher(p, true, 20); err != nil {
		t.Fatal(err)
	}
	got, err := s.Pushers("@a:x")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Lang != "de" || got[0].PushKeyTS != 7 || string(got[0].Data) != `{"url":"u"}` {
		t.Fatalf("pushers of a: %+v", got)
	}
	if us, _ := s.PusherUsers(); !slices.Equal(us, []string{"@a:x", "@b:x"}) {
		t.Fatalf("pusher users %v", us)
	}
	// Without append, b's pusher takes the key from a.
	if err := s.SetPusher(q, false, 20); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Pushers("@a:x"); len(got) != 0 {
		t.Fatalf("a still has %+v", got)
	}
	// A pusher on a device that does not exist is refused.
	bad := q
	bad.DeviceID, bad.PushKey = "nope", "k9"
	if err := s.SetPusher(bad, true, 20); err == nil {
		t.Fatal("pusher on a missing device stored")
	}
	if ok, err := s.DeletePusher("@b:x", "app", "k9"); ok || err != nil {
		t.Fatalf("delete missing: %v %v", ok, err)
	}
	// Deleting the device deletes its pushers.
	q2 := q
	q2.PushKey, q2.DeviceID = "k2", "D2"
	if err := s.SetPusher(q2, false, 20); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteDevices("@b:x", []string{"D1"}); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Pushers("@b:x")
	if len(got) != 1 || got[0].PushKey != "k2" {
		t.Fatalf("after deleting D1: %+v", got)
	}
	if ok, err := s.DeletePusher("@b:x", "app", "k2"); !ok || err != nil {
		t.Fatalf("delete: %v %v", ok, err)
	}
	if us, _ := s.PusherUsers(); len(us) != 0 {
		t.Fatalf("pusher users left: %v", us)
	}
}

// Pusher finds one pusher by its key; SetPusher holds the per-user limit
// for new pushers only.
func TestPusherLookupAndLimit(t *testing.T) {
	s := openTemp(t)
	if err := s.CreateAccount(Account{UserID: "@a:x"}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutDevice(Device{UserID: "@a:x", DeviceID: "D", TokenHash: "h"}); err != nil {
		t.Fatal(err)
	}
	p := Pusher{UserID: "@a:x", AppID: "app", PushKey: "k1", DeviceID: "D", Kind: "http", Data: []byte(`{"url":"u"}`)}
	q := p
	q.PushKey = "k2"
	for _, x := range []Pusher{p, q} {
		if err := s.SetPusher(x, false, 2); err != nil {
			t.Fatal(err)
		}
	}
	r := p
	r.PushKey = "k3"
	if err := s.SetPusher(r, false, 2); !errors.Is(err, ErrPusherLimit) {
		t.Fatalf("third pusher: %v", err)
	}
	p.Lang = "de"
	if err := s.SetPusher(p, false, 2); err != nil {
		t.Fatalf("replacing at the limit: %v", err)
	}
	if got, err := s.Pusher("@a:x", "app", "k1"); err != nil || got.Lang != "de" || string(got.Data) != `{"url":"u"}` {
		t.Fatalf("Pusher: %+v %v", got, err)
	}
	if _, err := s.Pusher("@a:x", "app", "k3"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Pusher of a refused key: %v", err)
	}
}
