package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tollgate-dev/tollgate/internal/api"
	"github.com/tollgate-dev/tollgate/store"
)

const keysUsage = `usage: tollgate keys <create|list|revoke|rotate> [flags]

Manages API keys directly in the database that serve and gateway use.

  tollgate keys create --name NAME --scopes a,b [--expires 720h] [--rate 600/1m] [--json]
  tollgate keys list [--json]
  tollgate keys revoke ID [--json]
  tollgate keys rotate ID [--overlap 24h] [--json]

Every subcommand takes --database (env TOLLGATE_DATABASE) and --account
(env TOLLGATE_ACCOUNT, default "default"; created if missing).
Scopes: sessions:read sessions:write leads:read leads:write keys:read keys:write * (all of these)
        admin:write (server-wide switches; not in *, granted only by name)
`

func keysCmd(ctx context.Context, e env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(e.stderr, keysUsage)
		if len(args) == 0 {
			return usageError{"keys: no subcommand"}
		}
		return nil
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("keys "+sub, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() { fmt.Fprint(e.stderr, keysUsage+"\nflags:\n"); fs.PrintDefaults() }
	database := fs.String("database", "tollgate.db", "SQLite file path or postgres:// URL (env TOLLGATE_DATABASE)")
	account := fs.String("account", "default", "account name (env TOLLGATE_ACCOUNT)")
	asJSON := fs.Bool("json", false, "print JSON for machines")
	var (
		name, scopes, rate *string
		expires, overlap   *time.Duration
	)
	switch sub {
	case "create":
		name = fs.String("name", "", "key name (required)")
		scopes = fs.String("scopes", "", "comma-separated scopes (required)")
		rate = fs.String("rate", "", `rate plan such as "600/1m" (empty: the server default)`)
		expires = fs.Duration("expires", 0, "lifetime such as 720h (0: never expires; negative is refused)")
	case "rotate":
		overlap = fs.Duration("overlap", api.DefaultRotationOverlap, "how long the old secret keeps working (0s: it stops at once; negative is refused)")
	case "list", "revoke":
	default:
		fmt.Fprint(e.stderr, keysUsage)
		return usageError{"keys: unknown subcommand " + sub}
	}
	// Flags may come before or after the ID.
	var rest []string
	for {
		if err := parseFlags(fs, args, e.getenv); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if sub == "create" && (*name == "" || *scopes == "") {
		return usageError{"keys create: --name and --scopes are required"}
	}
	// Every argument is checked before the database is touched: an extra
	// word is a mistake (--scopes a b gave a key without b), never ignored.
	switch wantIDs := map[string]int{"create": 0, "list": 0, "revoke": 1, "rotate": 1}[sub]; {
	case len(rest) != wantIDs && wantIDs == 0:
		return usageError{fmt.Sprintf("keys %s: unexpected arguments: %s (scopes are one comma-separated list: --scopes a,b)", sub, strings.Join(rest, " "))}
	case len(rest) != wantIDs:
		return usageError{"keys " + sub + ": want exactly one key ID"}
	}
	if *account == "" {
		return usageError{"keys: --account (env TOLLGATE_ACCOUNT) must not be empty"}
	}
	// Before the database is touched. A negative --expires would otherwise
	// make a key that never expires, and a negative --overlap end the old
	// key at once, where POST /v1/keys/{id}/rotate refuses it.
	if expires != nil && *expires < 0 {
		return usageError{fmt.Sprintf("keys create: -expires must not be negative, got %v (0: never expires)", *expires)}
	}
	if overlap != nil && *overlap < 0 {
		return usageError{fmt.Sprintf("keys rotate: -overlap must not be negative, got %v (0s: the old key stops at once)", *overlap)}
	}
	st, err := openStore(ctx, *database)
	if err != nil {
		return err
	}
	defer st.Close()
	acc, _, err := st.EnsureAccount(ctx, *account)
	if err != nil {
		return err
	}
	out := e.stdout
	switch sub {
	case "create":
		req := api.KeyRequest{Name: *name, Scopes: splitList(*scopes), Rate: *rate}
		if *expires > 0 {
			t := time.Now().Add(*expires).UTC()
			req.ExpiresAt = &t
		}
		if err := req.Validate(time.Now()); err != nil {
			return usageError{"keys create: " + err.Error()}
		}
		ck, err := api.CreateKey(ctx, st, acc.ID, req)
		if err != nil {
			return err
		}
		return printCreated(out, ck, *asJSON)
	case "list":
		ks, err := st.ListKeys(ctx, acc.ID)
		if err != nil {
			return err
		}
		if *asJSON {
			views := make([]api.Key, len(ks))
			for i, k := range ks {
				views[i] = api.NewKeyView(k)
			}
			return json.NewEncoder(out).Encode(views)
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tSTART\tSCOPES\tSTATE\tLAST USED")
		for _, k := range ks {
			fmt.Fprintf(tw, "%s\t%s\t%s…\t%s\t%s\t%s\n", k.ID, printable(k.Name), k.Start, strings.Join(k.Scopes, ","), keyState(k, time.Now()), fmtTime(k.LastUsedAt))
		}
		return tw.Flush()
	case "revoke":
		k, err := st.RevokeKey(ctx, acc.ID, rest[0], time.Now())
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(out).Encode(api.NewKeyView(k))
		}
		fmt.Fprintf(out, "revoked %s (%s…)\n", k.ID, k.Start)
		return nil
	case "rotate":
		ck, err := api.RotateKey(ctx, st, acc.ID, rest[0], *overlap)
		if err != nil {
			return err
		}
		return printCreated(out, ck, *asJSON)
	}
	return nil
}

// printable returns s for a terminal: quoted, with escapes, when it is not
// valid UTF-8 or holds a character that is not printable (a control
// character, a tab or newline that would break the table, an escape
// sequence, U+2028, bidirectional overrides, zero-width characters).
// Names in any script stay as they are.
func printable(s string) string {
	if !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

func printCreated(out io.Writer, ck api.CreatedKey, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(out).Encode(ck)
	}
	rate := ck.Rate
	if rate == "" {
		rate = "the server's default (--rate-default)"
	}
	fmt.Fprintf(out, "%s\n\nid:     %s\nname:   %s\nscopes: %s\nrate:   %s\n", ck.Secret, ck.ID, printable(ck.Name), strings.Join(ck.Scopes, ","), rate)
	if ck.ExpiresAt != nil {
		fmt.Fprintf(out, "expires: %s\n", ck.ExpiresAt.Format(time.RFC3339))
	}
	if ck.PreviousKeyExpiresAt != nil {
		fmt.Fprintf(out, "previous key valid until: %s\n", ck.PreviousKeyExpiresAt.Format(time.RFC3339))
	}
	fmt.Fprintln(out, "\nThe key above is shown once; it is stored only as a hash.")
	return nil
}

func keyState(k store.APIKey, now time.Time) string {
	switch {
	case k.RevokedAt != nil:
		return "revoked"
	case k.ExpiresAt != nil && !k.ExpiresAt.After(now):
		return "expired"
	case k.ExpiresAt != nil:
		return "expires " + k.ExpiresAt.Format(time.RFC3339)
	}
	return "active"
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.Format(time.RFC3339)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
