package main

import (
	"flag"
	"fmt"
)

// envFlags maps flag names to the environment variables that set them when
// the flag is not given. Precedence: flag > environment > default. This is
// the one place configuration is read.
var envFlags = map[string]string{
	"addr":                  "TOLLGATE_ADDR",
	"database":              "TOLLGATE_DATABASE",
	"redis":                 "TOLLGATE_REDIS_URL",
	"log-level":             "TOLLGATE_LOG_LEVEL",
	"body-limit":            "TOLLGATE_BODY_LIMIT",
	"success-field":         "TOLLGATE_SUCCESS_FIELD",
	"account":               "TOLLGATE_ACCOUNT",
	"rate-default":          "TOLLGATE_RATE_DEFAULT",
	"rate-fail":             "TOLLGATE_RATE_FAIL",
	"ratelimit-headers":     "TOLLGATE_RATELIMIT_HEADERS",
	"max-concurrency":       "TOLLGATE_MAX_CONCURRENCY",
	"request-timeout":       "TOLLGATE_REQUEST_TIMEOUT",
	"maintenance":           "TOLLGATE_MAINTENANCE",
	"idempotency-retention": "TOLLGATE_IDEMPOTENCY_RETENTION",
	"max-keys":              "TOLLGATE_MAX_KEYS",
	"idempotency-lease":     "TOLLGATE_IDEMPOTENCY_LEASE",
	"upstream":              "TOLLGATE_UPSTREAM",
	"upstream-timeout":      "TOLLGATE_UPSTREAM_TIMEOUT",
	"upgrade-idle-timeout":  "TOLLGATE_UPGRADE_IDLE_TIMEOUT",
	"max-upgraded":          "TOLLGATE_MAX_UPGRADED",
	"trust-forwarded":       "TOLLGATE_TRUST_FORWARDED",
}

// parseFlags parses args into fs, then fills every flag that was not given
// from its environment variable, if set.
func parseFlags(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return usageError{err.Error()}
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		name, ok := envFlags[f.Name]
		if !ok || given[f.Name] || err != nil {
			return
		}
		if v := getenv(name); v != "" {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = usageError{fmt.Sprintf("%s=%q: %v", name, v, serr)}
			}
		}
	})
	return err
}
