package client

import (
	"context"
	"iter"
	"net/http"
	"time"
)

// LeadStatus is the state of a lead.
type LeadStatus string

// The lead states.
const (
	LeadNew       LeadStatus = "new"
	LeadContacted LeadStatus = "contacted"
	LeadQualified LeadStatus = "qualified"
	LeadLost      LeadStatus = "lost"
)

// Lead is a lead as the API describes it.
type Lead struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Email     string     `json:"email,omitempty"`
	Phone     string     `json:"phone,omitempty"`
	Company   string     `json:"company,omitempty"`
	Notes     string     `json:"notes,omitempty"`
	Status    LeadStatus `json:"status"`
	CreatedAt time.Time  `json:"createdAt"`
	UpdatedAt time.Time  `json:"updatedAt"`
}

// LeadCreate is the body of a lead creation. Zero fields are left out and
// take the server's defaults.
type LeadCreate struct {
	Name    string     `json:"name"`
	Email   string     `json:"email,omitempty"`
	Phone   string     `json:"phone,omitempty"`
	Company string     `json:"company,omitempty"`
	Notes   string     `json:"notes,omitempty"`
	Status  LeadStatus `json:"status,omitempty"`
}

// LeadUpdate is a partial update: only the non-nil fields are sent.
type LeadUpdate struct {
	Name    *string     `json:"name,omitempty"`
	Email   *string     `json:"email,omitempty"`
	Phone   *string     `json:"phone,omitempty"`
	Company *string     `json:"company,omitempty"`
	Notes   *string     `json:"notes,omitempty"`
	Status  *LeadStatus `json:"status,omitempty"`
}

// LeadListOptions selects a page of leads.
type LeadListOptions struct {
	// Limit is the page size; zero means the server's default.
	Limit int
	// Cursor is the next_cursor of the previous page; "" for the first.
	Cursor string
	// Status filters the list when set.
	Status LeadStatus
}

// LeadService manages leads. It is safe for concurrent use.
type LeadService struct{ c *Client }

// Create creates a lead: POST /v1/leads.
func (s *LeadService) Create(ctx context.Context, in LeadCreate) (*Lead, error) {
	var out Lead
	if err := s.c.call(ctx, "create lead", http.MethodPost, "/v1/leads", in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Get returns a lead: GET /v1/leads/{id}.
func (s *LeadService) Get(ctx context.Context, id string) (*Lead, error) {
	const op = "get lead"
	p, err := pathID(op, id)
	if err != nil {
		return nil, err
	}
	var out Lead
	if err := s.c.call(ctx, op, http.MethodGet, "/v1/leads/"+p, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListPage returns one page of leads: GET /v1/leads.
func (s *LeadService) ListPage(ctx context.Context, opts LeadListOptions) (*Page[Lead], error) {
	q := listQuery(opts.Limit, opts.Cursor, "status", string(opts.Status))
	var out Page[Lead]
	if err := s.c.call(ctx, "list leads", http.MethodGet, "/v1/leads"+q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// List iterates over every lead from opts.Cursor on, fetching pages as it
// goes. An error ends the iteration.
func (s *LeadService) List(ctx context.Context, opts LeadListOptions) iter.Seq2[Lead, error] {
	return all(ctx, "list leads", opts.Cursor, func(ctx context.Context, cursor string) (*Page[Lead], error) {
		o := opts
		o.Cursor = cursor
		return s.ListPage(ctx, o)
	})
}

// Update changes the set fields of a lead: PATCH /v1/leads/{id}.
func (s *LeadService) Update(ctx context.Context, id string, in LeadUpdate) (*Lead, error) {
	const op = "update lead"
	p, err := pathID(op, id)
	if err != nil {
		return nil, err
	}
	var out Lead
	if err := s.c.call(ctx, op, http.MethodPatch, "/v1/leads/"+p, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Delete deletes a lead: DELETE /v1/leads/{id}.
func (s *LeadService) Delete(ctx context.Context, id string) error {
	const op = "delete lead"
	p, err := pathID(op, id)
	if err != nil {
		return err
	}
	return s.c.call(ctx, op, http.MethodDelete, "/v1/leads/"+p, nil, nil)
}
