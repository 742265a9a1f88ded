package homeserver

import (
	"strings"
	"testing"
	"time"
)

// media.max_bytes_per_user bounds what one user has stored, through both
// upload paths, counting uploads being written; other users and 0
// (unlimited) are not affected.
func TestMediaUserQuota(t *testing.T) {
	tn := newTestNode(t, func(c *Config) { c.Media.MaxBytesPerUser = 100 })
	alice, aliceTok, _ := tn.register("alice", "pw")
	_, bobTok, _ := tn.register("bob", "pw")
	post := func(token string, n int) mediaResp {
		t.Helper()
		return mediaDo(tn, "POST", mediaLegacy+"/upload", token, "text/plain", []byte(strings.Repeat("x", n)))
	}
	upload(t, tn, aliceTok, "text/plain", "", []byte(strings.Repeat("a", 60)))
	post(aliceTok, 41).wantErr(t, 403, ErrCodeLimitExceeded)
	if files := mediaFiles(t, tn); len(files) != 1 {
		t.Fatalf("refused upload stored: %v", files)
	}
	// The quota is per user.
	upload(t, tn, bobTok, "text/plain", "", []byte(strings.Repeat("b", 100)))
	post(bobTok, 1).wantErr(t, 403, ErrCodeLimitExceeded)
	// Exactly up to the quota is allowed, through a created ID as well.
	id := create(t, tn, aliceTok)
	put := func(n int) mediaResp {
		return mediaDo(tn, "PUT", mediaLegacy+"/upload/test.local/"+id, aliceTok, "text/plain", []byte(strings.Repeat("c", n)))
	}
	put(41).wantErr(t, 403, ErrCodeLimitExceeded)
	if r := put(40); r.Status != 200 {
		t.Fatalf("upload to the quota: %d %s", r.Status, r.Data)
	}
	post(aliceTok, 1).wantErr(t, 403, ErrCodeLimitExceeded)

	// Uploads being written count before their rows exist, and stop
	// counting once written.
	m := tn.Module(mediaModuleName).(*mediaRepo)
	if len(m.writing) != 0 {
		t.Fatalf("writing left over: %v", m.writing)
	}
	_, carolTok, _ := tn.register("carol", "pw")
	m.writing["@carol:test.local"] = 70
	post(carolTok, 31).wantErr(t, 403, ErrCodeLimitExceeded)
	delete(m.writing, "@carol:test.local")
	if r := post(carolTok, 31); r.Status != 200 {
		t.Fatalf("upload once the write ended: %d %s", r.Status, r.Data)
	}
	if used, err := tn.store.MediaBytesByUploader(alice); err != nil || used != 100 {
		t.Fatalf("alice stores %d bytes (%v), want 100", used, err)
	}

	// 0 is unlimited.
	free := newTestNode(t, func(c *Config) { c.Media.MaxBytesPerUser = 0 })
	_, tok, _ := free.register("dave", "pw")
	for range 3 {
		upload(t, free, tok, "text/plain", "", []byte(strings.Repeat("d", 1000)))
	}
}

func TestMediaConfigValidate(t *testing.T) {
	if errs := defaultMediaConfig().validate(); len(errs) != 0 {
		t.Fatalf("default media config: %v", errs)
	}
	for name, mutate := range map[string]func(*MediaConfig){
		"negative max_bytes_per_user":         func(c *MediaConfig) { c.MaxBytesPerUser = -1 },
		"negative remote_cache_bytes":         func(c *MediaConfig) { c.RemoteCacheBytes = -1 },
		"cache smaller than the largest item": func(c *MediaConfig) { c.RemoteCacheBytes = c.MaxUploadBytes - 1 },
	} {
		c := defaultMediaConfig()
		mutate(&c)
		if errs := c.validate(); len(errs) != 1 {
			t.Errorf("%s: %v", name, errs)
		}
	}
	c := defaultMediaConfig()
	c.MaxBytesPerUser, c.RemoteCacheBytes = 0, 0
	if errs := c.validate(); len(errs) != 0 {
		t.Fatalf("0 (unlimited): %v", errs)
	}
}

// One user can have at most maxRemoteFetchesPerUser remote items being
// fetched at once; joining a fetch in flight is free, other users are not
// affected, and the count goes down as fetches end (also failed ones).
// Cached remote media counts against nobody's quota.
func TestMediaRemoteFetchLimit(t *testing.T) {
	fn := newFedNet(t)
	a, _ := fn.node("a.test", t.TempDir(), 1)
	b, _ := fn.nodeWith("b.test", t.TempDir(), 2, func(c *Config) { c.Media.MaxBytesPerUser = 10 })
	_, aliceTok, _ := a.register("alice", "pw")
	_, bobTok, _ := b.register("bob", "pw")
	_, carolTok, _ := b.register("carol", "pw")
	var ids []string
	for i := range maxRemoteFetchesPerUser + 1 {
		_, id := upload(t, a, aliceTok, "text/plain", "", []byte(strings.Repeat("r", 20+i)))
		ids = append(ids, id)
	}
	get := func(token, id string) *mediaResp {
		return mediaStart(b, "GET", mediaV1+"/download/a.test/"+id, token, "", nil)
	}
	var started []*mediaResp
	for _, id := range ids[:maxRemoteFetchesPerUser] {
		started = append(started, get(bobTok, id))
	}
	over := get(bobTok, ids[maxRemoteFetchesPerUser])
	over.wantErr(t, 429, ErrCodeLimitExceeded)
	joined := get(bobTok, ids[0])
	other := get(carolTok, ids[maxRemoteFetchesPerUser])
	fn.settle()
	for i, r := range append(started, joined, other) {
		if r.Status != 200 {
			t.Fatalf("download %d: %d %s", i, r.Status, r.Data)
		}
	}
	m := b.Module(mediaModuleName).(*mediaRepo)
	if len(m.remoteFetches) != 0 {
		t.Fatalf("fetch counts left over: %v", m.remoteFetches)
	}
	// Failed fetches end too.
	var missing []*mediaResp
	for i := range maxRemoteFetchesPerUser {
		missing = append(missing, get(bobTok, "missing"+strings.Repeat("x", i+1)))
	}
	fn.settle()
	for _, r := range missing {
		r.wantErr(t, 404, ErrCodeNotFound)
	}
	if len(m.remoteFetches) != 0 {
		t.Fatalf("fetch counts left over after failures: %v", m.remoteFetches)
	}
	var fresh []*mediaResp
	for range maxRemoteFetchesPerUser {
		_, id := upload(t, a, aliceTok, "text/plain", "", []byte("f"))
		fresh = append(fresh, get(bobTok, id))
	}
	fn.settle()
	for i, r := range fresh {
		if r.Status != 200 {
			t.Fatalf("fetch %d after the failed ones ended: %d %s", i, r.Status, r.Data)
		}
	}
	// Bob's quota of 10 bytes is untouched by the cached items.
	upload(t, b, bobTok, "text/plain", "", []byte("0123456789"))
}

// media.remote_cache_bytes bounds the cached remote media: fetching an
// item that does not fit drops the least recently used remote items
// (rows and files); local uploads stay.
func TestMediaRemoteCacheEviction(t *testing.T) {
	fn := newFedNet(t)
	a, _ := fn.node("a.test", t.TempDir(), 1)
	fetches := 0
	b, _ := fn.nodeVia("b.test", t.TempDir(), 2, func(c *Config) {
		c.Media.MaxUploadBytes = 100
		c.Media.RemoteCacheBytes = 250
	}, func(r Remote) Remote {
		return remoteFunc(func(dest string, req OutboundRequest, done func(OutboundResponse, error)) {
			if strings.HasPrefix(req.URI, "/_matrix/federation/v1/media/download/") {
				fetches++
			}
			r.Do(dest, req, done)
		})
	})
	_, aliceTok, _ := a.register("alice", "pw")
	_, bobTok, _ := b.register("bob", "pw")
	_, local := upload(t, b, bobTok, "text/plain", "", []byte(strings.Repeat("l", 100)))
	ids := map[string]string{}
	for name, size := range map[string]int{"x1": 100, "x2": 100, "x3": 50, "x4": 100} {
		_, ids[name] = upload(t, a, aliceTok, "text/plain", "", []byte(strings.Repeat(name[1:], size)))
	}
	get := func(name string) {
		t.Helper()
		fn.clock.Advance(2 * time.Minute) // each access at its own time, beyond the recording grain
		r := mediaStart(b, "GET", mediaV1+"/download/a.test/"+ids[name], bobTok, "", nil)
		fn.settle()
		if r.Status != 200 {
			t.Fatalf("download %s: %d %s", name, r.Status, r.Data)
		}
	}
	cached := func(want ...string) {
		t.Helper()
		var got []string
		for _, name := range []string{"x1", "x2", "x3", "x4"} {
			if _, err := b.store.GetMedia("a.test", ids[name]); err == nil {
				got = append(got, name)
			}
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("cached %v, want %v", got, want)
		}
		if used, err := b.store.RemoteMediaBytes(); err != nil || used > 250 {
			t.Fatalf("remote cache holds %d bytes (%v), bound 250", used, err)
		}
		// One file per cached item, plus the local upload's.
		if files := mediaFiles(t, b); len(files) != len(want)+1 {
			t.Fatalf("%d media files, want %d", len(files), len(want)+1)
		}
		if _, err := b.store.GetMedia("b.test", local); err != nil {
			t.Fatalf("local upload dropped: %v", err)
		}
	}
	get("x1")
	get("x2")
	get("x1") // from the cache: x2 is now the least recently used
	get("x3") // 250 bytes: fits exactly
	cached("x1", "x2", "x3")
	if fetches != 3 {
		t.Fatalf("%d fetches, want 3", fetches)
	}
	get("x4") // drops x2
	cached("x1", "x3", "x4")
	get("x2") // fetched again; drops x1, now the least recently used
	cached("x2", "x3", "x4")
	if fetches != 5 {
		t.Fatalf("%d fetches, want 5", fetches)
	}
}
