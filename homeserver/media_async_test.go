package homeserver

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mxmesh/mxmesh/homeserver/store"
)

// create reserves a media ID and returns it.
func create(t *testing.T, tn *testNode, token string) string {
	t.Helper()
	r := mediaDo(tn, "POST", "/_matrix/media/v1/create", token, "", nil)
	if r.Status != 200 {
		t.Fatalf("create: %d %s", r.Status, r.Data)
	}
	body := r.json(t)
	uri, _ := body["content_uri"].(string)
	id, ok := strings.CutPrefix(uri, "mxc://test.local/")
	if !ok || !validMediaID(id) {
		t.Fatalf("content_uri %q", uri)
	}
	if want := float64(tn.Now().Add(24 * time.Hour).UnixMilli()); body["unused_expires_at"] != want {
		t.Fatalf("unused_expires_at %v, want %v", body["unused_expires_at"], want)
	}
	return id
}

func TestMediaAsyncUpload(t *testing.T) {
	tn := newTestNode(t, func(c *Config) { c.Media.MaxUploadBytes = 64 })
	_, alice, _ := tn.register("alice", "pw")
	_, bob, _ := tn.register("bob", "pw")
	id := create(t, tn, alice)
	put := func(token, id string, data string) mediaResp {
		t.Helper()
		return mediaDo(tn, "PUT", mediaLegacy+"/upload/test.local/"+id+"?filename=late.txt", token, "text/plain", []byte(data))
	}
	download := mediaV1 + "/download/test.local/" + id

	mediaDo(tn, "GET", download+"?timeout_ms=0", alice, "", nil).wantErr(t, 504, ErrCodeNotYetUploaded)
	mediaDo(tn, "GET", download+"?timeout_ms=soon", alice, "", nil).wantErr(t, 400, ErrCodeInvalidParam)
	// A download waits for the content; another one gives up after its
	// timeout; a third is abandoned by its client.
	waiting := mediaStart(tn, "GET", download, bob, "", nil)
	impatient := mediaStart(tn, "GET", download+"?timeout_ms=5000", bob, "", nil)
	req := &Request{Method: "GET", Path: download, Query: url.Values{}, AccessToken: bob, RemoteIP: "192.0.2.1"}
	gone := tn.Dispatch(req, func(Response) { t.Error("abandoned download answered") })
	gone.Cancel()
	tn.clock.Advance(5 * time.Second)
	impatient.wantErr(t, 504, ErrCodeNotYetUploaded)
	if waiting.Answered {
		t.Fatalf("download answered before the upload: %d %s", waiting.Status, waiting.Data)
	}

	put(bob, id, "not yours").wantErr(t, 403, ErrCodeForbidden)
	if r := put(alice, id, "hello, later"); r.Status != 200 || string(r.Data) != "{}" {
		t.Fatalf("upload to created ID: %d %s", r.Status, r.Data)
	}
	if !waiting.Answered || waiting.Status != 200 || string(waiting.Data) != "hello, later" ||
		waiting.Header["Content-Disposition"] != "inline; filename=late.txt" {
		t.Fatalf("waiting download: %v %d %q %v", waiting.Answered, waiting.Status, waiting.Data, waiting.Header)
	}
	m := tn.Module(mediaModuleName).(*mediaRepo)
	if len(m.waiting) != 0 || len(m.uploading) != 0 {
		t.Fatalf("left over: %d waiting, %d uploading", len(m.waiting), len(m.uploading))
	}
	put(alice, id, "again").wantErr(t, 409, ErrCodeCannotOverwriteMedia)
	if r := mediaDo(tn, "GET", download, alice, "", nil); !bytes.Equal(r.Data, []byte("hello, later")) {
		t.Fatalf("overwritten: %q", r.Data)
	}

	put(alice, "neverCreated", "x").wantErr(t, 404, ErrCodeNotFound)
	mediaDo(tn, "PUT", mediaLegacy+"/upload/other.test/"+id, alice, "text/plain", []byte("x")).wantErr(t, 404, ErrCodeNotFound)
	big := create(t, tn, alice)
	put(alice, big, strings.Repeat("x", 65)).wantErr(t, 413, ErrCodeTooLarge)

	// Created IDs lapse after 24 hours.
	late := create(t, tn, alice)
	tn.clock.Advance(24 * time.Hour)
	put(alice, late, "too late").wantErr(t, 404, ErrCodeNotFound)
	mediaDo(tn, "GET", mediaV1+"/download/test.local/"+late, alice, "", nil).wantErr(t, 404, ErrCodeNotFound)

	// At most maxPendingUploads unfilled IDs per user.
	for range maxPendingUploads {
		create(t, tn, bob)
	}
	mediaDo(tn, "POST", "/_matrix/media/v1/create", bob, "", nil).wantErr(t, 429, ErrCodeLimitExceeded)
	create(t, tn, alice)
}

// A fill whose store write finds the pending row gone, or content already
// there, answers as the checks before the write would have.
func TestMediaFillError(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		code   string
	}{
		{fmt.Errorf("store: fill pending media x: %w", store.ErrNotFound), 404, ErrCodeNotFound},
		{fmt.Errorf("store: insert media x: %w", store.ErrExists), 409, ErrCodeCannotOverwriteMedia},
	} {
		var e *Error
		if err := fillError("x", tc.err); !errors.As(err, &e) || e.Status != tc.status || e.Code != tc.code {
			t.Errorf("fillError(%v) = %v, want %d %s", tc.err, err, tc.status, tc.code)
		}
	}
	if err := fillError("x", errors.New("disk full")); errors.As(err, new(*Error)) {
		t.Errorf("fillError(disk full) = %v, want an internal error", err)
	}
}
