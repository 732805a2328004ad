package client

import (
	"context"
	"fmt"
	"iter"
	"net/http"
	"strings"
	"time"
)

// Key is an API key as the API describes it, without its secret.
type Key struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Start      string     `json:"start"`
	Scopes     []string   `json:"scopes"`
	Rate       string     `json:"rate,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// CreatedKey is the answer to creating or rotating a key. Key is the secret:
// it is shown only here, once.
type CreatedKey struct {
	ID        string     `json:"id"`
	Key       string     `json:"key"`
	Name      string     `json:"name"`
	Start     string     `json:"start"`
	Scopes    []string   `json:"scopes"`
	Rate      string     `json:"rate,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// PreviousKeyExpiresAt is set by Rotate: when the old secret stops
	// working.
	PreviousKeyExpiresAt *time.Time `json:"previous_key_expires_at,omitempty"`
}

// KeyCreate is the body of a key creation.
type KeyCreate struct {
	Name   string   `json:"name"`
	Scopes []string `json:"scopes"`
	// ExpiresAt, if set, is when the key stops working.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// Rate, if set, is the key's rate policy, e.g. "600/1m".
	Rate string `json:"rate,omitempty"`
}

// KeyListOptions selects a page of keys.
type KeyListOptions struct {
	// Limit is the page size; zero means the server's default.
	Limit int
	// Cursor is the next_cursor of the previous page; "" for the first.
	Cursor string
}

// KeyService manages API keys. It is safe for concurrent use.
type KeyService struct{ c *Client }

// Create creates a key: POST /v1/keys. If the key was made but its secret
// was not received (see ErrSecretNotReceived), Create returns the key
// without it, and an error.
func (s *KeyService) Create(ctx context.Context, in KeyCreate) (*CreatedKey, error) {
	const op = "create key"
	var out CreatedKey
	attempts, err := s.c.callN(ctx, op, http.MethodPost, "/v1/keys", in, &out)
	if err != nil {
		return nil, err
	}
	return withSecret(op, http.MethodPost, "/v1/keys", attempts, &out)
}

// withSecret returns out, and an error if its secret is missing.
func withSecret(op, method, path string, attempts int, out *CreatedKey) (*CreatedKey, error) {
	if out.Key == "" {
		return out, &Error{Op: op, Method: method, Path: path, Attempts: attempts,
			Err: fmt.Errorf("key %s: %w (the answer was the stored replay of an earlier attempt with this Idempotency-Key; unless an earlier call received the secret, revoke the key and make another)", out.ID, ErrSecretNotReceived)}
	}
	return out, nil
}

// Get returns a key: GET /v1/keys/{id}.
func (s *KeyService) Get(ctx context.Context, id string) (*Key, error) {
	const op = "get key"
	p, err := pathID(op, id)
	if err != nil {
		return nil, err
	}
	var out Key
	if err := s.c.call(ctx, op, http.MethodGet, "/v1/keys/"+p, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListPage returns one page of keys: GET /v1/keys.
func (s *KeyService) ListPage(ctx context.Context, opts KeyListOptions) (*Page[Key], error) {
	var out Page[Key]
	if err := s.c.call(ctx, "list keys", http.MethodGet, "/v1/keys"+listQuery(opts.Limit, opts.Cursor), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// List iterates over every key from opts.Cursor on, fetching pages as it
// goes. An error ends the iteration.
func (s *KeyService) List(ctx context.Context, opts KeyListOptions) iter.Seq2[Key, error] {
	return all(ctx, "list keys", opts.Cursor, func(ctx context.Context, cursor string) (*Page[Key], error) {
		o := opts
		o.Cursor = cursor
		return s.ListPage(ctx, o)
	})
}

// Revoke revokes a key: DELETE /v1/keys/{id}.
func (s *KeyService) Revoke(ctx context.Context, id string) error {
	const op = "revoke key"
	p, err := pathID(op, id)
	if err != nil {
		return err
	}
	return s.c.call(ctx, op, http.MethodDelete, "/v1/keys/"+p, nil, nil)
}

// NoOverlap, as Rotate's overlap, ends the old secret at once ("overlap":
// "0s"): the rotation for a key that leaked. The server never refuses it,
// even at the key cap.
const NoOverlap time.Duration = -1

// Rotate issues a new secret for a key: POST /v1/keys/{id}/rotate. The old
// secret keeps working for overlap: zero means the server's default (24h),
// NoOverlap (or any negative value) not at all. As with Create, a secret
// that was not received is an error, returned with the new key.
func (s *KeyService) Rotate(ctx context.Context, id string, overlap time.Duration) (*CreatedKey, error) {
	const op = "rotate key"
	p, err := pathID(op, id)
	if err != nil {
		return nil, err
	}
	body := struct {
		Overlap string `json:"overlap,omitempty"`
	}{}
	switch {
	case overlap > 0:
		body.Overlap = formatDuration(overlap)
	case overlap < 0:
		body.Overlap = "0s"
	}
	var out CreatedKey
	attempts, err := s.c.callN(ctx, op, http.MethodPost, "/v1/keys/"+p+"/rotate", body, &out)
	if err != nil {
		return nil, err
	}
	return withSecret(op, http.MethodPost, "/v1/keys/"+p+"/rotate", attempts, &out)
}

// formatDuration writes d as Go does, without zero trailing units:
// 24h0m0s becomes 24h, 1h30m0s becomes 1h30m.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
