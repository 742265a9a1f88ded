package store

import (
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
	if err := s.SetPusher(p, false); err != nil {
		t.Fatal(err)
	}
	// Same app and key for another user with append: both stay.
	q := p
	q.UserID, q.DeviceID = "@b:x", "D1"
	if err := s.SetPusher(q, true); err != nil {
		t.Fatal(err)
	}
	// An update of a's pusher replaces it.
	p.Lang, p.PushKeyTS = "de", 7
	if err := s.SetPusher(p, true); err != nil {
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
	if err := s.SetPusher(q, false); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Pushers("@a:x"); len(got) != 0 {
		t.Fatalf("a still has %+v", got)
	}
	// A pusher on a device that does not exist is refused.
	bad := q
	bad.DeviceID, bad.PushKey = "nope", "k9"
	if err := s.SetPusher(bad, true); err == nil {
		t.Fatal("pusher on a missing device stored")
	}
	if ok, err := s.DeletePusher("@b:x", "app", "k9"); ok || err != nil {
		t.Fatalf("delete missing: %v %v", ok, err)
	}
	// Deleting the device deletes its pushers.
	q2 := q
	q2.PushKey, q2.DeviceID = "k2", "D2"
	if err := s.SetPusher(q2, false); err != nil {
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
