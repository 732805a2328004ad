package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// env is what every subcommand gets from the process.
type env struct {
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
}

// command is one subcommand; each lives in its own file.
type command struct {
	summary string
	run     func(ctx context.Context, e env, args []string) error
}

var commands = map[string]command{
	"serve":   {"run the API server", serveCmd},
	"gateway": {"proxy an upstream HTTP service with the error contract", gatewayCmd},
	"keys":    {"create, list, revoke and rotate API keys", keysCmd},
	"call": {"call the API with retries done right", func(ctx context.Context, e env, args []string) error {
		if code := callCmd(ctx, args, e.getenv, e.stdout, e.stderr); code != 0 {
			return exitError(code)
		}
		return nil
	}},
}

// exitError is an error that carries the process exit code.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// usageError reports a command line that cannot be run; exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func exitCode(err error) int {
	var ee exitError
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return int(ee)
	case errors.Is(err, flag.ErrHelp): // -h asked for the usage: not an error
		return 0
	case errors.As(err, &ue):
		return 2
	}
	return 1
}

// run is the whole program: it dispatches args to a subcommand.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	e := env{getenv: getenv, stdout: stdout, stderr: stderr}
	if len(args) == 2 && args[0] == "help" {
		args = []string{args[1], "-h"} // "tollgate help keys" is "tollgate keys -h"
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, usage())
		if len(args) == 0 {
			return usageError{"no command"}
		}
		return nil
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "tollgate: unknown command %q\n\n%s", args[0], usage())
		return usageError{"unknown command " + args[0]}
	}
	err := cmd.run(ctx, e, args[1:])
	var ee exitError
	if err != nil && !errors.As(err, &ee) && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stderr, "tollgate %s: %v\n", args[0], err)
	}
	return err
}

func usage() string {
	var b strings.Builder
	b.WriteString("usage: tollgate <command> [flags]\n\ncommands:\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "  %-8s %s\n", n, commands[n].summary)
	}
	b.WriteString("\nRun 'tollgate <command> -h' for a command's flags.\n")
	return b.String()
}
