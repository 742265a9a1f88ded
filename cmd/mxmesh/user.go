package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mxmesh/mxmesh/homeserver"
	"github.com/mxmesh/mxmesh/homeserver/store"
)

func init() {
	register(command{name: "user", summary: "manage accounts: user add --dir DIR NAME [--password P] [--admin]", run: runUser})
}

func runUser(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "add" {
		fmt.Fprintln(stderr, "usage: mxmesh user add --dir DIR NAME [--password P] [--admin]")
		return 2
	}
	fset := flag.NewFlagSet("user add", flag.ContinueOnError)
	fset.SetOutput(stderr)
	dir := fset.String("dir", defaultDir, "data directory")
	password := fset.String("password", "", "password (read from the first line of stdin when absent)")
	admin := fset.Bool("admin", false, "make the account a server admin")
	pos, err := parseInterspersed(fset, args[1:])
	if err != nil {
		return 2
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: mxmesh user add --dir DIR NAME [--password P] [--admin]")
		return 2
	}
	if err := userAdd(*dir, pos[0], *password, *admin, stdin, stdout); err != nil {
		fmt.Fprintf(stderr, "mxmesh user add: %v\n", err)
		return 1
	}
	return 0
}

// userAdd creates an account directly in the database. It works while the
// server runs: SQLite WAL lets it write beside the server, waiting out the
// server's write lock for up to store.BusyTimeoutMillis.
func userAdd(dir, name, password string, admin bool, stdin io.Reader, stdout io.Writer) error {
	cfg, err := homeserver.LoadConfig(dir)
	if err != nil {
		return err
	}
	local := name
	if strings.HasPrefix(name, "@") {
		l, server, ok := strings.Cut(name[1:], ":")
		if !ok || server != cfg.ServerName {
			return fmt.Errorf("%s is not a user ID on this server (%s)", name, cfg.ServerName)
		}
		local = l
	}
	if password == "" {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && err != io.EOF {
			return fmt.Errorf("read password from stdin: %w", err)
		}
		password = strings.TrimRight(line, "\r\n")
		if password == "" {
			return fmt.Errorf("no password: give --password or one line on stdin")
		}
	}
	st, err := store.Open(cfg.Path(cfg.Database))
	if err != nil {
		return err
	}
	defer st.Close()
	userID, err := homeserver.CreateAccount(st, cfg, local, password, admin, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "created %s\n", userID)
	return nil
}

// parseInterspersed parses flags that may come before or after the
// positional arguments and returns the positional ones.
func parseInterspersed(fset *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fset.Parse(args); err != nil {
			return nil, err
		}
		args = fset.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
