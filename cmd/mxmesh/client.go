package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mxmesh/mxmesh/coap"
	"github.com/mxmesh/mxmesh/gateway"
	"github.com/mxmesh/mxmesh/noise"
)

func init() {
	register(command{name: "client", summary: "a low-bandwidth Matrix client over CoAP/Noise: login, send, sync", run: runClient})
}

const clientUsage = `usage: mxmesh client --server ADDR --key KEY --server-name NAME [--state FILE] [--frames] [-v] COMMAND ...

  register USER [--password P]   create an account (needs open registration)
  login USER [--password P]      log in; the access token goes into the state file
  create-room [NAME]             create a room, print its ID
  send ROOM_ID TEXT...           send a text message
  sync [--timeout MS]            print new messages (from where the last sync ended)
  upload FILE [--type T]         upload a file (at most 1 MiB), print its mxc:// URI;
                                 T defaults to the type of the file's extension
  download MXC [-o FILE] [--thumbnail WxH]
                                 download mxc://SERVER/ID to FILE (default stdout),
                                 or a thumbnail fitting in W×H pixels

ADDR is the server's CoAP/Noise UDP address, KEY its key token ("mxk1:...",
from "mxmesh peer show" on the server) and NAME its server name, which the
token's signature must cover. With --plain instead of --key and
--server-name: plain CoAP (loopback only).
Passwords are read from the first line of stdin when --password is absent.
-v prints the datagrams and bytes each command used on stderr.`

// clientState is what the client keeps between runs.
type clientState struct {
	AccessToken string `json:"access_token,omitempty"`
	UserID      string `json:"user_id,omitempty"`
	DeviceID    string `json:"device_id,omitempty"`
	NextBatch   string `json:"next_batch,omitempty"`
}

func runClient(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("client", flag.ContinueOnError)
	fset.SetOutput(stderr)
	server := fset.String("server", "", "server CoAP/Noise UDP address, host:port (required)")
	key := fset.String("key", "", "server key token, mxk1:... (required unless --plain)")
	name := fset.String("server-name", "", "the server's name, whose signature the key token carries (required with --key)")
	plain := fset.Bool("plain", false, "plain CoAP without Noise (loopback only, debugging)")
	state := fset.String("state", "mxmesh-client.json", "file keeping the access token and sync position")
	verbose := fset.Bool("v", false, "print datagrams and bytes used on stderr")
	frames := fset.Bool("frames", false, "send and ask for mesh frames (smaller; mxmesh servers only) instead of MSC3079 CBOR")
	timeout := fset.Duration("wait", 2*time.Minute, "give up on a command after this long")
	fset.Usage = func() { fmt.Fprintln(stderr, clientUsage); fset.PrintDefaults() }
	if err := fset.Parse(args); err != nil {
		return 2
	}
	rest := fset.Args()
	if *server == "" || (*key == "") == !*plain || (*key != "" && *name == "") || len(rest) == 0 {
		fset.Usage()
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	c, err := dialClient(*server, *key, *name, *plain, *frames)
	if err != nil {
		fmt.Fprintf(stderr, "mxmesh client: %v\n", err)
		return 1
	}
	defer c.Close()
	st, err := loadClientState(*state)
	if err != nil {
		fmt.Fprintf(stderr, "mxmesh client: %v\n", err)
		return 1
	}
	c.SetAccessToken(st.AccessToken)
	cl := &cliClient{c: c, ctx: ctx, st: st, stdin: stdin, stdout: stdout}
	code := cl.run(rest)
	if code == 0 {
		if err := saveClientState(*state, cl.st); err != nil {
			fmt.Fprintf(stderr, "mxmesh client: %v\n", err)
			code = 1
		}
	} else if cl.err != nil {
		fmt.Fprintf(stderr, "mxmesh client %s: %v\n", rest[0], cl.err)
	}
	if *verbose {
		tr := c.UDP().Traffic()
		fmt.Fprintf(stderr, "sent %d datagrams, %d B; received %d datagrams, %d B (UDP payload)\n",
			tr.SentDatagrams, tr.SentBytes, tr.RecvDatagrams, tr.RecvBytes)
	}
	return code
}

func dialClient(server, key, name string, plain, frames bool) (*gateway.CoAPClient, error) {
	ua, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		return nil, fmt.Errorf("--server %q: %w", server, err)
	}
	ap := netip.AddrPortFrom(ua.AddrPort().Addr().Unmap(), ua.AddrPort().Port())
	cfg := gateway.CoAPClientConfig{Server: ap, CoAP: coap.Config{MaxBody: clientMaxBody}}
	if frames {
		cfg.Format = gateway.ContentFormatMeshFrame
	}
	if !plain {
		tok, err := noise.ParseKeyToken(key)
		if err != nil {
			return nil, fmt.Errorf("--key: %w", err)
		}
		if err := tok.Verify(name); err != nil {
			return nil, fmt.Errorf("--key: %w", err)
		}
		cfg.ServerName, cfg.ServerKey = name, tok
	}
	return gateway.DialCoAP(cfg)
}

type cliClient struct {
	c      *gateway.CoAPClient
	ctx    context.Context
	st     clientState
	stdin  io.Reader
	stdout io.Writer
	err    error
}

func (cl *cliClient) run(args []string) int {
	fset := flag.NewFlagSet("client "+args[0], flag.ContinueOnError)
	fset.SetOutput(io.Discard)
	password := fset.String("password", "", "")
	timeout := fset.Int("timeout", 0, "")
	mediaType := fset.String("type", "", "")
	output := fset.String("o", "", "")
	thumbnail := fset.String("thumbnail", "", "")
	pos, err := parseInterspersed(fset, args[1:])
	if err != nil {
		cl.err = err
		return 2
	}
	switch {
	case (args[0] == "login" || args[0] == "register") && len(pos) == 1:
		cl.err = cl.login(args[0], pos[0], *password)
	case args[0] == "create-room" && len(pos) <= 1:
		cl.err = cl.createRoom(strings.Join(pos, ""))
	case args[0] == "send" && len(pos) >= 2:
		cl.err = cl.send(pos[0], strings.Join(pos[1:], " "))
	case args[0] == "sync" && len(pos) == 0:
		cl.err = cl.sync(*timeout)
	case args[0] == "upload" && len(pos) == 1:
		cl.err = cl.upload(pos[0], *mediaType)
	case args[0] == "download" && len(pos) == 1:
		cl.err = cl.download(pos[0], *output, *thumbnail)
	default:
		cl.err = fmt.Errorf("bad arguments %q\n%s", args, clientUsage)
		return 2
	}
	if cl.err != nil {
		return 1
	}
	return 0
}

// do sends one request and decodes a 2xx answer into out.
func (cl *cliClient) do(method, path string, body, out any) error {
	var j []byte
	if body != nil {
		var err error
		if j, err = json.Marshal(body); err != nil {
			return err
		}
	}
	resp, err := cl.c.Do(cl.ctx, method, path, j)
	if err != nil {
		return err
	}
	if err := resp.Err(); err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(resp.JSON, out)
}

func (cl *cliClient) login(how, user, password string) error {
	if password == "" {
		line, err := bufio.NewReader(cl.stdin).ReadString('\n')
		if err != nil && (!errors.Is(err, io.EOF) || line == "") {
			return fmt.Errorf("read password from stdin: %w", err)
		}
		password = strings.TrimRight(line, "\r\n")
	}
	var resp struct {
		UserID      string `json:"user_id"`
		AccessToken string `json:"access_token"`
		DeviceID    string `json:"device_id"`
	}
	var err error
	if how == "register" {
		err = cl.do("POST", "/_matrix/client/v3/register", map[string]any{"username": user, "password": password,
			"auth": map[string]string{"type": "m.login.dummy"}}, &resp)
	} else {
		err = cl.do("POST", "/_matrix/client/v3/login", map[string]any{"type": "m.login.password",
			"identifier": map[string]string{"type": "m.id.user", "user": user}, "password": password,
			"initial_device_display_name": "mxmesh client"}, &resp)
	}
	if err != nil {
		return err
	}
	cl.st = clientState{AccessToken: resp.AccessToken, UserID: resp.UserID, DeviceID: resp.DeviceID}
	fmt.Fprintf(cl.stdout, "logged in as %s (device %s)\n", resp.UserID, resp.DeviceID)
	return nil
}

func (cl *cliClient) createRoom(name string) error {
	body := map[string]any{}
	if name != "" {
		body["name"] = name
	}
	var resp struct {
		RoomID string `json:"room_id"`
	}
	if err := cl.do("POST", "/_matrix/client/v3/createRoom", body, &resp); err != nil {
		return err
	}
	fmt.Fprintln(cl.stdout, resp.RoomID)
	return nil
}

func (cl *cliClient) send(room, text string) error {
	txn := strconv.FormatInt(time.Now().UnixNano(), 36)
	var resp struct {
		EventID string `json:"event_id"`
	}
	path := "/_matrix/client/v3/rooms/" + url.PathEscape(room) + "/send/m.room.message/" + txn
	if err := cl.do("PUT", path, map[string]string{"msgtype": "m.text", "body": text}, &resp); err != nil {
		return err
	}
	fmt.Fprintln(cl.stdout, resp.EventID)
	return nil
}

func (cl *cliClient) sync(timeoutMS int) error {
	q := url.Values{}
	if cl.st.NextBatch != "" {
		q.Set("since", cl.st.NextBatch)
	}
	if timeoutMS > 0 {
		q.Set("timeout", strconv.Itoa(timeoutMS))
	}
	path := "/_matrix/client/v3/sync"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var resp struct {
		NextBatch string `json:"next_batch"`
		Rooms     struct {
			Join map[string]struct {
				Timeline struct {
					Events []struct {
						Type    string `json:"type"`
						Sender  string `json:"sender"`
						Content struct {
							MsgType string `json:"msgtype"`
							Body    string `json:"body"`
						} `json:"content"`
					} `json:"events"`
				} `json:"timeline"`
			} `json:"join"`
		} `json:"rooms"`
	}
	if err := cl.do("GET", path, nil, &resp); err != nil {
		return err
	}
	rooms := make([]string, 0, len(resp.Rooms.Join))
	for id := range resp.Rooms.Join {
		rooms = append(rooms, id)
	}
	slices.Sort(rooms)
	for _, id := range rooms {
		for _, ev := range resp.Rooms.Join[id].Timeline.Events {
			if ev.Type == "m.room.message" {
				fmt.Fprintf(cl.stdout, "%s %s: %s\n", id, ev.Sender, ev.Content.Body)
			}
		}
	}
	cl.st.NextBatch = resp.NextBatch
	return nil
}

func loadClientState(path string) (clientState, error) {
	var st clientState
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("read client state: %w", err)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, fmt.Errorf("client state %s: %w", path, err)
	}
	return st, nil
}

func saveClientState(path string, st clientState) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return writeNew(path, append(data, '\n'))
	}
	return replaceFile(path, append(data, '\n'))
}
