package codec

import (
	"errors"
	"testing"
)

func TestVersionsByte(t *testing.T) {
	cases := []struct {
		o    FrameOptions
		want byte
	}{
		{FrameOptions{Table: TablePlain}, 0x00},
		{FrameOptions{Table: TableMSC3079}, 0x01},
		{FrameOptions{Table: TableMesh1, Dict: 1}, 0x12},
		{FrameOptions{Table: 15, Dict: 15}, 0xff},
	}
	for _, c := range cases {
		b, err := c.o.VersionsByte()
		if err != nil || b != c.want {
			t.Errorf("%+v.VersionsByte() = %#x, %v; want %#x", c.o, b, err, c.want)
		}
		if got := ParseVersions(b); got != c.o {
			t.Errorf("ParseVersions(%#x) = %+v, want %+v", b, got, c.o)
		}
	}
	for _, bad := range []FrameOptions{{Table: 16}, {Dict: 16}, {Dict: -1}} {
		if _, err := bad.VersionsByte(); err == nil {
			t.Errorf("%+v.VersionsByte() succeeded", bad)
		}
	}
	// A newer peer's limit comes down to ours.
	if got := ParseVersions(0x73).Min(FramesLatest); got != FramesLatest {
		t.Errorf("Min with a newer peer = %+v, want %+v", got, FramesLatest)
	}
	if got := FramesLatest.Min(FrameOptions{Table: TableMSC3079}); got != (FrameOptions{Table: TableMSC3079}) {
		t.Errorf("Min with an older peer = %+v", got)
	}
}

// A receiver limited to an older table or no dictionary refuses newer
// frames with ErrNotNegotiated and reads frames written within its limit.
func TestDecodeFrameLimit(t *testing.T) {
	j := []byte(`{"body":"hello hello hello hello","msgtype":"m.text"}`)
	newest, _, err := EncodeFrame(nil, j, FramesLatest)
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := ParseFrameHeader(newest); h.Dict != 1 || h.Table != TableMesh1 {
		t.Fatalf("sample frame header %+v: want compressed mesh table", h)
	}
	for _, limit := range []FrameOptions{{Table: TableMSC3079, Dict: 1}, {Table: TableMesh1}, {Table: TableMSC3079}} {
		if _, h, err := DecodeFrameLimit(nil, newest, limit); !errors.Is(err, ErrNotNegotiated) || h.Table != TableMesh1 {
			t.Errorf("limit %+v: newest frame: header %+v, err %v; want ErrNotNegotiated", limit, h, err)
		}
		f, _, err := EncodeFrame(nil, j, limit)
		if err != nil {
			t.Fatal(err)
		}
		got, h, err := DecodeFrameLimit(nil, f, limit)
		if err != nil || string(got) != string(j) || !limit.Admits(h) {
			t.Errorf("limit %+v: own frame: %s, %+v, %v", limit, got, h, err)
		}
	}
}
