package codec

import (
	"errors"
	"testing"
)

func TestPaths(t *testing.T) {
	cases := []struct{ full, short, expanded string }{
		// MSC3079's own example (r0 path, expands to v3).
		{"/_matrix/client/r0/rooms/!7mqP7DYBUOmwAweF:localhost/send/m.room.message/$.AAABeH6obLU",
			"/9/!7mqP7DYBUOmwAweF:localhost/m.room.message/$.AAABeH6obLU",
			"/_matrix/client/v3/rooms/!7mqP7DYBUOmwAweF:localhost/send/m.room.message/$.AAABeH6obLU"},
		{"/_matrix/client/v3/sync?since=s1_2&timeout=30000", "/7?since=s1_2&timeout=30000", ""},
		{"/_matrix/client/versions", "/0", ""},
		{"/_matrix/client/v3/pushrules/", "/n", ""},
		{"/_matrix/client/v3/user/@a:b/rooms/!r:b/account_data/m.tag", "/s/@a:b/!r:b/m.tag", ""},
		{"/_matrix/federation/v1/send/1764115200000", "/~0/1764115200000", ""},
		{"/_matrix/federation/v2/send_join/!r:b/$abc", "/~8/!r:b/$abc", ""},
		{"/_matrix/key/v2/server", "/~S", ""},
		// No enum: unchanged both ways.
		{"/_matrix/client/v3/rooms/!r:b/unknown", "/_matrix/client/v3/rooms/!r:b/unknown", ""},
		{"/_matrix/client/v1/media/config", "/_matrix/client/v1/media/config", ""},
	}
	for _, c := range cases {
		if got := CompressPath(c.full); got != c.short {
			t.Errorf("CompressPath(%q) = %q, want %q", c.full, got, c.short)
		}
		want := c.expanded
		if want == "" {
			want = c.full
		}
		got, err := ExpandPath(c.short)
		if err != nil || got != want {
			t.Errorf("ExpandPath(%q) = %q, %v; want %q", c.short, got, err, want)
		}
	}
	for _, bad := range []string{"/v", "/9/onlyroom", "/7/extra", "relative", "/~Z", "/9//m.room.message/t"} {
		if _, err := ExpandPath(bad); !errors.Is(err, ErrUnknownPath) {
			t.Errorf("ExpandPath(%q) error = %v, want ErrUnknownPath", bad, err)
		}
	}
	// Every template compresses to its code and back.
	for _, pe := range pathEnums {
		full := pe[1]
		short := CompressPath(full)
		back, err := ExpandPath(short)
		if err != nil || back != full {
			t.Errorf("%s: %q -> %q -> %q, %v", pe[0], full, short, back, err)
		}
	}
}
