package event

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// Spec: appendices.md "Canonical JSON", "Examples" — every example, in order.
var specCanonicalExamples = []struct{ in, want string }{
	{`{}`, `{}`},
	{"{\n    \"one\": 1,\n    \"two\": \"Two\"\n}", `{"one":1,"two":"Two"}`},
	{"{\n    \"b\": \"2\",\n    \"a\": \"1\"\n}", `{"a":"1","b":"2"}`},
	{`{"b":"2","a":"1"}`, `{"a":"1","b":"2"}`},
	{`{
    "auth": {
        "success": true,
        "mxid": "@john.doe:example.com",
        "profile": {
            "display_name": "John Doe",
            "three_pids": [
                {
                    "medium": "email",
                    "address": "john.doe@example.org"
                },
                {
                    "medium": "msisdn",
                    "address": "123456789"
                }
            ]
        }
    }
}`, `{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":[{"address":"john.doe@example.org","medium":"email"},{"address":"123456789","medium":"msisdn"}]},"success":true}}`},
	{`{"a": "日本語"}`, `{"a":"日本語"}`},
	{`{"本": 2, "日": 1}`, `{"日":1,"本":2}`},
	{`{"a": "\u65E5"}`, `{"a":"日"}`},
	{`{"a": null}`, `{"a":null}`},
	{`{"a": -0, "b": 1e10}`, `{"a":0,"b":10000000000}`},
}

func TestCanonicalJSONSpecExamples(t *testing.T) {
	for _, tc := range specCanonicalExamples {
		got, err := CanonicalJSON([]byte(tc.in))
		if err != nil {
			t.Errorf("CanonicalJSON(%s): %v", tc.in, err)
			continue
		}
		if string(got) != tc.want {
			t.Errorf("CanonicalJSON(%s)\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
}

// Escapes follow the appendix grammar: only \" \\ \b \f \n \r \t and
// lowercase \u00XX for other controls; everything else literal.
func TestCanonicalJSONStrings(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`"\u0000\u0001\u001F\u007f"`, `"\u0000\u0001\u001f` + "\x7f" + `"`},
		{`"\b\f\n\r\t\"\\\/"`, `"\b\f\n\r\t\"\\/"`},
		{`"\u0008\u000C\u000a"`, `"\b\f\n"`},
		{`"\u2028\u2029<>&"`, "\"\u2028\u2029<>&\""},
		{`"\ud83d\ude00"`, `"😀"`},
		{`"😀"`, `"😀"`},
		{`"\u00e9"`, `"é"`},
		{` [ 1 , -2 , true , false , null , "" , { } , [ ] ] `, `[1,-2,true,false,null,"",{},[]]`},
		{`{"a":{"c":1,"b":2},"A":0}`, `{"A":0,"a":{"b":2,"c":1}}`},
		// Code point order, not UTF-16 order: U+FF61 sorts before U+1F600.
		{`{"😀":1,"｡":2}`, `{"｡":2,"😀":1}`},
		{`9007199254740991`, `9007199254740991`},
		{`-9007199254740991`, `-9007199254740991`},
		{`2.50e1`, `25`},
		{`100e-2`, `1`},
		{`0.0`, `0`},
		{`0e99999999999999999999`, `0`},
	} {
		got, err := CanonicalJSON([]byte(tc.in))
		if err != nil {
			t.Errorf("CanonicalJSON(%s): %v", tc.in, err)
			continue
		}
		if string(got) != tc.want {
			t.Errorf("CanonicalJSON(%s)\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
}

func TestCanonicalJSONRejectsNumbers(t *testing.T) {
	for _, tc := range []struct{ in, wantErr string }{
		{`9007199254740992`, "out of range"},
		{`-9007199254740992`, "out of range"},
		{`1e16`, "out of range"},
		{`1e99999999999`, "out of range"},
		{`1.5`, "not an integer"},
		{`1e-1`, "not an integer"},
		{`{"a":[0.1]}`, "not an integer"},
	} {
		_, err := CanonicalJSON([]byte(tc.in))
		if err == nil || !errors.Is(err, ErrBadJSON) || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("CanonicalJSON(%s) = %v, want ErrBadJSON containing %q", tc.in, err, tc.wantErr)
		}
	}
}

func TestParseJSONRejects(t *testing.T) {
	deep := strings.Repeat("[", MaxJSONDepth+1) + strings.Repeat("]", MaxJSONDepth+1)
	for _, tc := range []struct {
		name, in, wantErr string
	}{
		{"duplicate key", `{"a":1,"a":2}`, `duplicate key "a" at offset 7`},
		{"duplicate key after unescaping", `{"a":1,"\u0061":2}`, `duplicate key "a"`},
		{"nested duplicate", `{"x":{"k":1,"k":1}}`, `duplicate key "k"`},
		{"invalid UTF-8", "{\"a\":\"\xff\"}", "invalid UTF-8 in string at offset 6"},
		{"truncated UTF-8", "\"\xe6\x97\"", "invalid UTF-8"},
		{"overlong UTF-8", "\"\xc0\xaf\"", "invalid UTF-8"},
		{"UTF-8 encoded surrogate", "\"\xed\xa0\x80\"", "invalid UTF-8"},
		{"invalid UTF-8 in key", "{\"\xff\":1}", "invalid UTF-8"},
		{"invalid UTF-8 after escape", "\"\\n\xff\"", "invalid UTF-8"},
		{"lone high surrogate", `"\ud800"`, `lone high surrogate \ud800`},
		{"lone high surrogate then char", `"\ud800x"`, `lone high surrogate`},
		{"lone low surrogate", `"\udc00"`, `lone low surrogate \udc00`},
		{"high surrogate pair with non-surrogate", `"\ud800\u0041"`, `not followed by a low surrogate`},
		{"reversed surrogate pair", `"\ude00\ud83d"`, `lone low surrogate`},
		{"bad escape", `"\x"`, `invalid escape \x`},
		{"short unicode escape", `"\u12"`, `invalid \u escape`},
		{"control character", "\"a\nb\"", "unescaped control character 0x0a"},
		{"trailing data", `{} {}`, "trailing data at offset 3"},
		{"trailing garbage", `1x`, "trailing data"},
		{"too deep", deep, "nesting deeper than 128"},
		{"leading zero", `01`, "leading zero"},
		{"bare minus", `-`, "invalid number"},
		{"dot without digits", `1.`, "no digits after '.'"},
		{"exponent without digits", `1e`, "no digits in exponent"},
		{"plus sign", `+1`, "unexpected character"},
		{"NaN", `NaN`, "unexpected character"},
		{"single quotes", `{'a':1}`, "expected string key"},
		{"trailing comma in object", `{"a":1,}`, "expected string key"},
		{"trailing comma in array", `[1,]`, "unexpected character ']'"},
		{"missing colon", `{"a" 1}`, "expected ':'"},
		{"unterminated string", `"abc`, "unterminated string"},
		{"unterminated object", `{"a":1`, "unterminated object"},
		{"unterminated array", `[1`, "unterminated array"},
		{"empty input", ``, "unexpected end of input"},
		{"only whitespace", " \n", "unexpected end of input"},
		{"byte order mark", "\xef\xbb\xbf{}", "unexpected character"},
		{"bad literal", `tru`, "invalid literal, want true"},
		{"non-JSON whitespace", "\v{}", "unexpected character"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := ParseJSON([]byte(tc.in))
			if err == nil {
				t.Fatalf("ParseJSON(%q) = %v, want error", tc.in, v)
			}
			if !errors.Is(err, ErrBadJSON) {
				t.Errorf("error %v does not wrap ErrBadJSON", err)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseJSON(%q) error %q, want it to contain %q", tc.in, err, tc.wantErr)
			}
			if _, err := CanonicalJSON([]byte(tc.in)); err == nil {
				t.Errorf("CanonicalJSON(%q) accepted what ParseJSON refuses", tc.in)
			}
		})
	}
}

func TestParseJSONAcceptsMaxDepth(t *testing.T) {
	in := strings.Repeat(`{"a":`, MaxJSONDepth) + "1" + strings.Repeat("}", MaxJSONDepth)
	if _, err := ParseJSON([]byte(in)); err != nil {
		t.Fatalf("depth %d refused: %v", MaxJSONDepth, err)
	}
}

func TestParseJSONTypes(t *testing.T) {
	v, err := ParseJSON([]byte(`{"o":{},"a":[1,"s",true,false,null],"n":-12.5e3}`))
	if err != nil {
		t.Fatal(err)
	}
	m := v.(map[string]any)
	if _, ok := m["o"].(map[string]any); !ok {
		t.Errorf("object is %T", m["o"])
	}
	a, ok := m["a"].([]any)
	if !ok || len(a) != 5 {
		t.Fatalf("array is %T %v", m["a"], m["a"])
	}
	if a[0] != json.Number("1") || a[1] != "s" || a[2] != true || a[3] != false || a[4] != nil {
		t.Errorf("array elements %#v", a)
	}
	if m["n"] != json.Number("-12.5e3") {
		t.Errorf("number kept as %#v, want the token -12.5e3", m["n"])
	}
}

func TestCheckNoFloats(t *testing.T) {
	for _, tc := range []struct {
		in      string
		wantErr string // "" means accepted
	}{
		{`{"a":[1,-1,0,9007199254740991,-9007199254740991],"b":{"c":"1.5"}}`, ""},
		{`-0`, ""}, // an integer token; canonical form is 0
		{`{"a":1.0}`, `"a": invalid JSON: number 1.0 is not an integer (floats are not allowed)`},
		{`{"a":{"b":[1,2e3]}}`, `"a": "b": [1]: invalid JSON: number 2e3 is not an integer`},
		{`[9007199254740992]`, "[0]: invalid JSON: integer 9007199254740992 out of range"},
		{`[-9007199254740992]`, "out of range"},
		{`[123456789012345678901234567890]`, "out of range"},
	} {
		v, err := ParseJSON([]byte(tc.in))
		if err != nil {
			t.Fatalf("ParseJSON(%s): %v", tc.in, err)
		}
		err = CheckNoFloats(v)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("CheckNoFloats(%s) = %v, want nil", tc.in, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("CheckNoFloats(%s) = %v, want error containing %q", tc.in, err, tc.wantErr)
		}
	}
}

func TestMarshalCanonicalGoValues(t *testing.T) {
	type item struct {
		Z string `json:"z"`
		A int    `json:"a"`
	}
	for _, tc := range []struct {
		name string
		in   any
		want string
	}{
		{"map", map[string]any{"b": int64(2), "a": 1, "c": json.Number("3")}, `{"a":1,"b":2,"c":3}`},
		{"raw message", json.RawMessage(`{ "y" : [ 1 ] , "x" : "\u0041" }`), `{"x":"A","y":[1]}`},
		{"strings", []string{"a", "\n"}, `["a","\n"]`},
		{"string map", map[string]string{"k": "v", "a": "b"}, `{"a":"b","k":"v"}`},
		{"signatures", map[string]map[string]string{"s": {"ed25519:1": "x"}}, `{"s":{"ed25519:1":"x"}}`},
		{"integral float", 3.0, `3`},
		{"struct through encoding/json", item{Z: "<&>", A: 7}, `{"a":7,"z":"<&>"}`},
		{"nil", nil, `null`},
	} {
		got, err := MarshalCanonical(tc.in)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if string(got) != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
		}
	}
	for _, bad := range []any{
		1.5, int64(1 << 53), "\xff", map[string]any{"\xff": 1},
		json.Number("1.5"), json.RawMessage(`{"a":1,"a":2}`), make(chan int),
	} {
		if got, err := MarshalCanonical(bad); err == nil {
			t.Errorf("MarshalCanonical(%#v) = %s, want error", bad, got)
		}
	}
}

func TestBase64(t *testing.T) {
	// appendices.md "Unpadded Base64" examples.
	for _, tc := range []struct{ in, want string }{
		{"", ""}, {"f", "Zg"}, {"fo", "Zm8"}, {"foo", "Zm9v"},
		{"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"},
	} {
		if got := EncodeBase64([]byte(tc.in)); got != tc.want {
			t.Errorf("EncodeBase64(%q) = %q, want %q", tc.in, got, tc.want)
		}
		for _, enc := range []string{tc.want, tc.want + strings.Repeat("=", (4-len(tc.want)%4)%4)} {
			got, err := DecodeBase64(enc)
			if err != nil || string(got) != tc.in {
				t.Errorf("DecodeBase64(%q) = %q, %v; want %q", enc, got, err, tc.in)
			}
		}
	}
	b := []byte{0xfb, 0xff, 0xfe}
	if got := EncodeBase64(b); got != "+//+" {
		t.Errorf("EncodeBase64 = %q", got)
	}
	if got := EncodeBase64URL(b); got != "-__-" {
		t.Errorf("EncodeBase64URL = %q", got)
	}
	for _, s := range []string{"+//+", "-__-"} {
		if got, err := DecodeBase64(s); err != nil || string(got) != string(b) {
			t.Errorf("DecodeBase64(%q) = %x, %v", s, got, err)
		}
	}
	for _, bad := range []string{"+_", "Zg=", "Zg===", "Z", "Zm 9v", "Zm9v\n", "Zg==Zg"} {
		if got, err := DecodeBase64(bad); err == nil {
			t.Errorf("DecodeBase64(%q) = %x, want error", bad, got)
		}
	}
}
