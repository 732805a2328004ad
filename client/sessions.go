package client

import (
	"context"
	"encoding/json"
	"errors"
	"iter"
	"net/http"
	"time"
)

// SessionStatus is the state of a session.
type SessionStatus string

// The session states.
const (
	SessionActive    SessionStatus = "active"
	SessionCompleted SessionStatus = "completed"
	SessionFailed    SessionStatus = "failed"
)

// Session is a session as the API describes it.
type Session struct {
	ID                string         `json:"id"`
	SessionExternalID string         `json:"sessionExternalId,omitempty"`
	Title             string         `json:"title,omitempty"`
	Source            string         `json:"source,omitempty"`
	Model             string         `json:"model,omitempty"`
	Status            SessionStatus  `json:"status"`
	StartedAt         *time.Time     `json:"startedAt,omitempty"`
	EndedAt           *time.Time     `json:"endedAt,omitempty"`
	Tokens            int64          `json:"tokens"`
	Metadata          map[string]any `json:"metadata,omitempty"`
	CreatedAt         time.Time      `json:"createdAt"`
	UpdatedAt         time.Time      `json:"updatedAt"`
}

// SessionCreate is the body of a session creation. Zero fields are left out
// and take the server's defaults.
type SessionCreate struct {
	SessionExternalID string         `json:"sessionExternalId,omitempty"`
	Title             string         `json:"title,omitempty"`
	Source            string         `json:"source,omitempty"`
	Model             string         `json:"model,omitempty"`
	Status            SessionStatus  `json:"status,omitempty"`
	StartedAt         *time.Time     `json:"startedAt,omitempty"`
	EndedAt           *time.Time     `json:"endedAt,omitempty"`
	Tokens            int64          `json:"tokens,omitempty"`
	Metadata          map[string]any `json:"metadata,omitempty"`
}

// SessionUpdate is a partial update: only the non-nil fields are sent, and
// the members they leave out are unchanged. Title, Source and Model set to
// "" clear them; ClearEndedAt clears the end time; a non-nil empty Metadata
// resets the metadata to {}.
type SessionUpdate struct {
	SessionExternalID *string        `json:"sessionExternalId,omitempty"`
	Title             *string        `json:"title,omitempty"`
	Source            *string        `json:"source,omitempty"`
	Model             *string        `json:"model,omitempty"`
	Status            *SessionStatus `json:"status,omitempty"`
	StartedAt         *time.Time     `json:"startedAt,omitempty"`
	EndedAt           *time.Time     `json:"endedAt,omitempty"`
	// ClearEndedAt sends "endedAt": null, which clears the end time.
	// EndedAt must then be nil.
	ClearEndedAt bool           `json:"-"`
	Tokens       *int64         `json:"tokens,omitempty"`
	Metadata     map[string]any `json:"metadata,omitempty"`
}

// MarshalJSON writes the set fields: endedAt as null for ClearEndedAt, and
// metadata whenever Metadata is non-nil, empty included.
func (u SessionUpdate) MarshalJSON() ([]byte, error) {
	if u.ClearEndedAt && u.EndedAt != nil {
		return nil, errors.New("both EndedAt and ClearEndedAt are set")
	}
	type fields SessionUpdate // without this method
	v := struct {
		fields
		EndedAt  any `json:"endedAt,omitempty"` // shadows fields' own
		Metadata any `json:"metadata,omitempty"`
	}{fields: fields(u)}
	if u.ClearEndedAt {
		v.EndedAt = json.RawMessage("null")
	} else if u.EndedAt != nil {
		v.EndedAt = u.EndedAt
	}
	if u.Metadata != nil {
		v.Metadata = u.Metadata
	}
	return json.Marshal(v)
}

// SessionListOptions selects a page of sessions.
type SessionListOptions struct {
	// Limit is the page size; zero means the server's default.
	Limit int
	// Cursor is the next_cursor of the previous page; "" for the first.
	Cursor string
	// Status and Source filter the list when set.
	Status SessionStatus
	Source string
}

// SessionService manages sessions. It is safe for concurrent use.
type SessionService struct{ c *Client }

// Create creates a session: POST /v1/sessions.
func (s *SessionService) Create(ctx context.Context, in SessionCreate) (*Session, error) {
	var out Session
	if err := s.c.call(ctx, "create session", http.MethodPost, "/v1/sessions", in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Get returns a session: GET /v1/sessions/{id}.
func (s *SessionService) Get(ctx context.Context, id string) (*Session, error) {
	const op = "get session"
	p, err := pathID(op, id)
	if err != nil {
		return nil, err
	}
	var out Session
	if err := s.c.call(ctx, op, http.MethodGet, "/v1/sessions/"+p, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListPage returns one page of sessions: GET /v1/sessions.
func (s *SessionService) ListPage(ctx context.Context, opts SessionListOptions) (*Page[Session], error) {
	q := listQuery(opts.Limit, opts.Cursor, "status", string(opts.Status), "source", opts.Source)
	var out Page[Session]
	if err := s.c.call(ctx, "list sessions", http.MethodGet, "/v1/sessions"+q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// List iterates over every session from opts.Cursor on, fetching pages as
// it goes. An error ends the iteration.
func (s *SessionService) List(ctx context.Context, opts SessionListOptions) iter.Seq2[Session, error] {
	return all(ctx, "list sessions", opts.Cursor, func(ctx context.Context, cursor string) (*Page[Session], error) {
		o := opts
		o.Cursor = cursor
		return s.ListPage(ctx, o)
	})
}

// Update changes the set fields of a session: PATCH /v1/sessions/{id}.
func (s *SessionService) Update(ctx context.Context, id string, in SessionUpdate) (*Session, error) {
	const op = "update session"
	p, err := pathID(op, id)
	if err != nil {
		return nil, err
	}
	var out Session
	if err := s.c.call(ctx, op, http.MethodPatch, "/v1/sessions/"+p, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Delete deletes a session: DELETE /v1/sessions/{id}.
func (s *SessionService) Delete(ctx context.Context, id string) error {
	const op = "delete session"
	p, err := pathID(op, id)
	if err != nil {
		return err
	}
	return s.c.call(ctx, op, http.MethodDelete, "/v1/sessions/"+p, nil, nil)
}
