package client

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/url"
	"strconv"
)

// Page is one page of a list: its items and the cursor of the next page
// ("" on the last page).
type Page[T any] struct {
	Data       []T    `json:"data"`
	NextCursor string `json:"next_cursor"`
}

// Ptr returns a pointer to v, for the optional fields of the Update types.
func Ptr[T any](v T) *T { return &v }

// listQuery encodes the shared list parameters.
func listQuery(limit int, cursor string, extra ...string) string {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] != "" {
			q.Set(extra[i], extra[i+1])
		}
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

// all walks every page from cursor on, yielding each item. It stops at the
// first error, which it yields with the zero T. A cursor the server names a
// second time (its own page's, or an earlier page's) is an error: the pages
// would come round again for ever.
func all[T any](ctx context.Context, op, cursor string, page func(ctx context.Context, cursor string) (*Page[T], error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		seen := map[string]bool{cursor: true}
		for {
			p, err := page(ctx, cursor)
			if err != nil {
				yield(zero, err)
				return
			}
			for _, item := range p.Data {
				if !yield(item, nil) {
					return
				}
			}
			if p.NextCursor == "" {
				return
			}
			if seen[p.NextCursor] {
				yield(zero, &Error{Op: op, Err: fmt.Errorf("server returned the same cursor %q again", p.NextCursor)})
				return
			}
			seen[p.NextCursor] = true
			cursor = p.NextCursor
		}
	}
}

// errEmptyID is the cause of the *Error of a call made with an empty id.
var errEmptyID = errors.New("empty id")

// pathID escapes id as one path segment; an empty id is an *Error.
func pathID(op, id string) (string, error) {
	if id == "" {
		return "", &Error{Op: op, Err: errEmptyID}
	}
	return url.PathEscape(id), nil
}
