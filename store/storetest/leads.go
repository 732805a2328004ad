package storetest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/store"
)

func (e *env) lead(t *testing.T, l store.Lead) store.Lead {
	t.Helper()
	if l.Status == "" {
		l.Status = store.LeadNew
	}
	out, err := e.s.CreateLead(e.ctx, l)
	if err != nil {
		t.Fatalf("CreateLead: %v", err)
	}
	return out
}

func testLeads(t *testing.T, h Harness) {
	e := newEnv(t, h)
	acme, other := e.account(t, "acme"), e.account(t, "other")
	in := store.Lead{
		AccountID: acme.ID,
		Name:      "Ada Lovelace",
		Email:     "ada@example.com",
		Phone:     "+441234567890",
		Company:   "Analytical Engines",
		Notes:     "met at a conference\nline two",
		Status:    store.LeadNew,
	}
	l, err := e.s.CreateLead(e.ctx, in)
	wantErr(t, "CreateLead", err, nil)
	if !strings.HasPrefix(l.ID, store.PrefixLead) || len(l.ID) != len(store.PrefixLead)+26 {
		t.Errorf("CreateLead ID = %q, want lead_<ulid>", l.ID)
	}
	want := in
	want.ID, want.CreatedAt, want.UpdatedAt = l.ID, e.now(), e.now()
	diff(t, "CreateLead", want, l)
	got, err := e.s.LeadByID(e.ctx, acme.ID, l.ID)
	wantErr(t, "LeadByID", err, nil)
	diff(t, "LeadByID", want, got)

	// Phones: absent ones never conflict; the same phone in another
	// account is fine; a taken one is a conflict on "phone".
	e.lead(t, store.Lead{AccountID: acme.ID})
	e.lead(t, store.Lead{AccountID: acme.ID})
	e.lead(t, store.Lead{AccountID: other.ID, Phone: in.Phone})
	_, err = e.s.CreateLead(e.ctx, store.Lead{AccountID: acme.ID, Phone: in.Phone, Status: store.LeadNew})
	wantConflict(t, "CreateLead(taken phone)", err, "phone")

	e.clock.Add(time.Minute)
	upd := got
	upd.Status, upd.Notes, upd.Phone = store.LeadQualified, "", "+15550001111"
	upd.CreatedAt = time.Unix(0, 0) // ignored
	out, err := e.s.UpdateLead(e.ctx, acme.ID, l.ID, set(upd))
	wantErr(t, "UpdateLead", err, nil)
	want = upd
	want.CreatedAt, want.UpdatedAt = got.CreatedAt, e.now()
	diff(t, "UpdateLead", want, out)
	got = out

	taker := e.lead(t, store.Lead{AccountID: acme.ID, Phone: "+15550002222"})
	upd = taker
	upd.Phone = got.Phone
	_, err = e.s.UpdateLead(e.ctx, acme.ID, taker.ID, set(upd))
	wantConflict(t, "UpdateLead(taken phone)", err, "phone")

	notFound := []struct {
		name string
		call func() error
	}{
		{"LeadByID of another account", func() error { _, err := e.s.LeadByID(e.ctx, other.ID, l.ID); return err }},
		{"LeadByID unknown", func() error { _, err := e.s.LeadByID(e.ctx, acme.ID, "lead_01J00000000000000000000000"); return err }},
		{"UpdateLead of another account", func() error {
			u := got
			u.AccountID, u.Name = other.ID, "hijacked"
			_, err := e.s.UpdateLead(e.ctx, other.ID, l.ID, set(u))
			return err
		}},
		{"DeleteLead of another account", func() error { return e.s.DeleteLead(e.ctx, other.ID, l.ID) }},
		{"CreateLead unknown account", func() error {
			_, err := e.s.CreateLead(e.ctx, store.Lead{AccountID: "acc_01J00000000000000000000000", Status: store.LeadNew})
			return err
		}},
	}
	for _, tt := range notFound {
		t.Run(tt.name, func(t *testing.T) { wantErr(t, tt.name, tt.call(), store.ErrNotFound) })
	}
	stored, err := e.s.LeadByID(e.ctx, acme.ID, l.ID)
	wantErr(t, "LeadByID", err, nil)
	diff(t, "lead after foreign writes", got, stored)

	wantErr(t, "DeleteLead", e.s.DeleteLead(e.ctx, acme.ID, l.ID), nil)
	_, err = e.s.LeadByID(e.ctx, acme.ID, l.ID)
	wantErr(t, "LeadByID after delete", err, store.ErrNotFound)
	wantErr(t, "DeleteLead again", e.s.DeleteLead(e.ctx, acme.ID, l.ID), store.ErrNotFound)
	// The deleted lead's phone is free again.
	e.lead(t, store.Lead{AccountID: acme.ID, Phone: got.Phone})
}

func testListLeads(t *testing.T, h Harness) {
	e := newEnv(t, h)
	acme, other := e.account(t, "acme"), e.account(t, "other")
	var all, qualified []store.Lead
	for i := range 5 {
		e.clock.Add(time.Millisecond)
		status := []string{store.LeadNew, store.LeadQualified}[i%2]
		l := e.lead(t, store.Lead{AccountID: acme.ID, Name: fmt.Sprint("l", i), Status: status})
		all = append(all, l)
		if status == store.LeadQualified {
			qualified = append(qualified, l)
		}
		e.lead(t, store.Lead{AccountID: other.ID, Status: status})
	}
	tests := []struct {
		name   string
		filter store.LeadFilter
		limit  int
		want   []store.Lead
	}{
		{name: "all", want: all},
		{name: "pages of 2", limit: 2, want: all},
		{name: "status", filter: store.LeadFilter{Status: store.LeadQualified}, limit: 1, want: qualified},
		{name: "no match", filter: store.LeadFilter{Status: store.LeadLost}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []store.Lead
			after := ""
			for page := 0; ; page++ {
				if page > len(all) {
					t.Fatal("ListLeads: pages never end")
				}
				list, next, err := e.s.ListLeads(e.ctx, acme.ID, tt.filter, store.Page{After: after, Limit: tt.limit})
				wantErr(t, "ListLeads", err, nil)
				if max := (store.Page{Limit: tt.limit}).EffectiveLimit(); len(list) > max {
					t.Fatalf("ListLeads page of %d items, limit %d", len(list), max)
				}
				got = append(got, list...)
				if next == "" {
					break
				}
				if len(list) == 0 || next != list[len(list)-1].ID {
					t.Fatalf("ListLeads next = %q, want the last item's ID", next)
				}
				after = next
			}
			diff(t, "ListLeads, all pages", tt.want, got)
		})
	}
}

// testLeadPhoneRace creates one phone from many goroutines at once: exactly
// one wins, every other gets a conflict on "phone".
func testLeadPhoneRace(t *testing.T, h Harness) {
	e := newEnv(t, h)
	acme := e.account(t, "acme")
	const n = 16
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		won, lost int
	)
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			_, err := e.s.CreateLead(e.ctx, store.Lead{AccountID: acme.ID, Phone: "+15550009999", Status: store.LeadNew})
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				won++
				return
			}
			var ce *store.ConflictError
			if !errors.As(err, &ce) || ce.Field != "phone" {
				t.Errorf("CreateLead(race) error = %v, want a conflict on phone", err)
				return
			}
			lost++
		})
	}
	close(start)
	wg.Wait()
	if won != 1 || lost != n-1 {
		t.Errorf("%d concurrent CreateLead of one phone: %d won, %d conflicts; want 1, %d", n, won, lost, n-1)
	}
	list, _, err := e.s.ListLeads(e.ctx, acme.ID, store.LeadFilter{}, store.Page{})
	wantErr(t, "ListLeads", err, nil)
	if len(list) != 1 {
		t.Errorf("leads after the race = %d, want 1", len(list))
	}
}
