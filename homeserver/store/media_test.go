package store

import (
	"errors"
	"path/filepath"
	"testing"
)

func TestMediaRows(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.GetMedia("hs", "abc"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing media: %v, want ErrNotFound", err)
	}
	named := Media{Origin: "hs", MediaID: "abc", ContentType: "image/png", FileName: "cat.png", Size: 7,
		Uploader: "@u:hs", CreatedTS: 1000, File: "ab/abcd"}
	anon := Media{Origin: "other", MediaID: "abc", ContentType: "text/plain", Size: 0, CreatedTS: 2000, File: "cd/cdef"}
	for _, m := range []Media{named, anon} {
		if err := s.InsertMedia(m); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetMedia(m.Origin, m.MediaID)
		if err != nil {
			t.Fatal(err)
		}
		if got != m {
			t.Fatalf("got %+v, want %+v", got, m)
		}
	}
	dup := named
	dup.ContentType = "text/html"
	if err := s.InsertMedia(dup); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate insert: %v, want ErrExists", err)
	}
	if got, _ := s.GetMedia("hs", "abc"); got != named {
		t.Fatalf("duplicate insert changed the row: %+v", got)
	}
}

func TestPendingMedia(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i, id := range []string{"a", "b"} {
		if err := s.CreatePendingMedia(PendingMedia{MediaID: id, Uploader: "@u:hs", ExpiresTS: int64(100 + i*100)}, 0, 2); err != nil {
			t.Fatal(err)
		}
	}
	// Two unexpired: the limit of 2 refuses a third, until one expires.
	if err := s.CreatePendingMedia(PendingMedia{MediaID: "c", Uploader: "@u:hs", ExpiresTS: 500}, 50, 2); !errors.Is(err, ErrExists) {
		t.Fatalf("over the limit: %v", err)
	}
	if err := s.CreatePendingMedia(PendingMedia{MediaID: "c", Uploader: "@v:hs", ExpiresTS: 500}, 50, 2); err != nil {
		t.Fatalf("another user: %v", err)
	}
	if err := s.CreatePendingMedia(PendingMedia{MediaID: "d", Uploader: "@u:hs", ExpiresTS: 500}, 100, 2); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	if _, err := s.GetPendingMedia("a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("expired row kept: %v", err)
	}
	if p, err := s.GetPendingMedia("b"); err != nil || p.Uploader != "@u:hs" || p.ExpiresTS != 200 {
		t.Fatalf("pending b: %+v %v", p, err)
	}

	m := Media{Origin: "hs", MediaID: "b", ContentType: "text/plain", Size: 1, Uploader: "@u:hs", File: "x"}
	if err := s.FillPendingMedia(m); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetPendingMedia("b"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("filled row still pending: %v", err)
	}
	if got, err := s.GetMedia("hs", "b"); err != nil || got != m {
		t.Fatalf("filled media: %+v %v", got, err)
	}
	if err := s.FillPendingMedia(m); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second fill: %v", err)
	}
	// A fill that cannot insert leaves the pending row.
	if err := s.InsertMedia(Media{Origin: "hs", MediaID: "d", ContentType: "a/b", File: "y"}); err != nil {
		t.Fatal(err)
	}
	if err := s.FillPendingMedia(Media{Origin: "hs", MediaID: "d", ContentType: "a/b", File: "z"}); !errors.Is(err, ErrExists) {
		t.Fatalf("fill over existing media: %v", err)
	}
	if _, err := s.GetPendingMedia("d"); err != nil {
		t.Fatalf("failed fill dropped the pending row: %v", err)
	}
}

// A remote item's last access is recorded at most once a minute.
func TestTouchRemoteMediaGrain(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.InsertMedia(Media{Origin: "r.test", MediaID: "m", ContentType: "text/plain", Size: 1, CreatedTS: 1000, File: "ab/x"}); err != nil {
		t.Fatal(err)
	}
	last := func() (ts int64) {
		if err := s.DB.QueryRow(`SELECT last_access_ts FROM media WHERE media_id = 'm'`).Scan(&ts); err != nil {
			t.Fatal(err)
		}
		return ts
	}
	for _, c := range []struct{ at, want int64 }{{31_000, 1000}, {61_000, 61_000}, {100_000, 61_000}, {121_000, 121_000}} {
		if err := s.TouchRemoteMedia("r.test", "m", c.at); err != nil {
			t.Fatal(err)
		}
		if got := last(); got != c.want {
			t.Fatalf("after an access at %d: last access %d, want %d", c.at, got, c.want)
		}
	}
}
