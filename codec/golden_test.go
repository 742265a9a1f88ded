package codec

import (
	"encoding/hex"
	"testing"
)

// msc3079TestObject is the test object from MSC3079 "JSON -> CBOR" with its
// published canonical CBOR.
const (
	msc3079JSON = `{
  "type": "m.room.message",
  "content": {
    "msgtype": "m.text",
    "body": "Hello World"
  },
  "sender": "@alice:localhost",
  "room_id": "!foo:localhost",
  "unsigned": {
    "bool_value": true,
    "null_value": null
  }
}`
	msc3079CBOR = "a5026e6d2e726f6f6d2e6d65737361676503a2181b6b48656c6c6f20576f726c64181c666d2e74657874056e21666f6f3a6c6f63616c686f7374067040616c6963653a6c6f63616c686f737409a26a626f6f6c5f76616c7565f56a6e756c6c5f76616c7565f6"
)

func TestMSC3079TestObject(t *testing.T) {
	got, info, err := Encode(nil, []byte(msc3079JSON), TableMSC3079)
	if err != nil {
		t.Fatal(err)
	}
	if !info.Canonicalised {
		t.Error("pretty-printed input not reported as canonicalised")
	}
	if h := hex.EncodeToString(got); h != msc3079CBOR {
		t.Fatalf("Encode = %s\nwant      %s", h, msc3079CBOR)
	}
	want := `{"content":{"body":"Hello World","msgtype":"m.text"},"room_id":"!foo:localhost","sender":"@alice:localhost","type":"m.room.message","unsigned":{"bool_value":true,"null_value":null}}`
	c, _ := hex.DecodeString(msc3079CBOR)
	for _, tab := range []Table{TableMSC3079, TableMesh1} {
		j, err := Decode(nil, c, tab)
		if err != nil {
			t.Fatalf("Decode(%s): %v", tab, err)
		}
		if string(j) != want {
			t.Errorf("Decode(%s) = %s\nwant %s", tab, j, want)
		}
	}
}
