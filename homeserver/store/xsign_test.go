package store

import (
	"errors"
	"testing"
)

func TestCrossSigningKeysReplaceDropsSignatures(t *testing.T) {
	s := openE2EE(t)
	const u = "@u:x"
	keys := []CrossSigningKey{{UsageMaster, "ed25519:M1", []byte(`{"m":1}`)}, {UsageSelfSigning, "ed25519:S1", []byte(`{"s":1}`)}}
	if err := s.PutCrossSigningKeys(u, keys); err != nil {
		t.Fatal(err)
	}
	sigs := []CrossSigningSig{
		{TargetUser: u, TargetKey: "DEV", SignerID: u, SignerKey: "ed25519:S1", TargetPub: "dpub", Signature: "sig1"},
		{TargetUser: u, TargetKey: "M1", SignerID: u, SignerKey: "ed25519:DEV", TargetPub: "M1", Signature: "sig2"},
		{TargetUser: u, TargetKey: "M1", SignerID: "@v:y", SignerKey: "ed25519:V", TargetPub: "M1", Signature: "sig3"},
	}
	if err := s.PutCrossSigningSigs(sigs); err != nil {
		t.Fatal(err)
	}
	// The owner sees their own signatures; another viewer also sees theirs.
	if got, err := s.CrossSigningSigsOn(u, ""); err != nil || len(got) != 2 {
		t.Fatalf("signatures seen by nobody in particular: %v %v", got, err)
	}
	if got, err := s.CrossSigningSigsOn(u, "@v:y"); err != nil || len(got) != 3 {
		t.Fatalf("signatures seen by @v:y: %v %v", got, err)
	}
	// Re-storing the same self-signing key keeps its signatures; a new one
	// drops them, and a new master key drops the signatures over the old.
	if err := s.PutCrossSigningKeys(u, keys[1:]); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.CrossSigningSigsOn(u, "@v:y"); len(got) != 3 {
		t.Fatalf("unchanged key lost signatures: %v", got)
	}
	if err := s.PutCrossSigningKeys(u, []CrossSigningKey{{UsageSelfSigning, "ed25519:S2", []byte(`{"s":2}`)}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.CrossSigningSigsOn(u, "@v:y"); len(got) != 2 || got[0].TargetKey != "M1" {
		t.Fatalf("after a new self-signing key: %v", got)
	}
	if err := s.PutCrossSigningKeys(u, []CrossSigningKey{{UsageMaster, "ed25519:M2", []byte(`{"m":2}`)}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.CrossSigningSigsOn(u, "@v:y"); len(got) != 0 {
		t.Fatalf("after a new master key: %v", got)
	}
	got, err := s.CrossSigningKeys(u)
	if err != nil || got[UsageMaster].KeyID != "ed25519:M2" || string(got[UsageSelfSigning].JSON) != `{"s":2}` || len(got) != 2 {
		t.Fatalf("keys: %v %v", got, err)
	}
}

func TestRemoteCrossSigningCacheFollowsDeviceKeys(t *testing.T) {
	s := openE2EE(t)
	const u = "@r:remote"
	if err := s.PutRemoteCrossSigningKeys(u, []byte(`{"m":1}`), nil, 7); err != nil {
		t.Fatal(err)
	}
	// Without cached device keys at the same position, it is not fresh.
	if _, _, err := s.RemoteCrossSigningKeys(u); !errors.Is(err, ErrNotFound) {
		t.Fatalf("without device keys: %v", err)
	}
	if err := s.PutRemoteDeviceKeys(u, []byte(`{}`), 7); err != nil {
		t.Fatal(err)
	}
	m, ss, err := s.RemoteCrossSigningKeys(u)
	if err != nil || string(m) != `{"m":1}` || ss != nil {
		t.Fatalf("fresh cache: %s %s %v", m, ss, err)
	}
	// A device list change makes both stale.
	if _, err := s.DeviceListChanged(u, 9); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.RemoteCrossSigningKeys(u); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after a change: %v", err)
	}
}

func TestKeysChangedKeepsStreamID(t *testing.T) {
	s := openE2EE(t)
	if _, err := s.DeviceListChanged("@u:x", 3); err != nil {
		t.Fatal(err)
	}
	if err := s.KeysChanged("@u:x", 5); err != nil {
		t.Fatal(err)
	}
	if err := s.KeysChanged("@w:x", 6); err != nil {
		t.Fatal(err)
	}
	if id, err := s.DeviceListStreamID("@u:x"); err != nil || id != 1 {
		t.Fatalf("stream_id %d %v, want 1", id, err)
	}
	if users, err := s.DeviceListsChangedSince(4, 6); err != nil || len(users) != 2 {
		t.Fatalf("changed since 4: %v %v", users, err)
	}
	if pos, err := s.MaxE2EEPos(); err != nil || pos != 6 {
		t.Fatalf("max position %d %v", pos, err)
	}
}
