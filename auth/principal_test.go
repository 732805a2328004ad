package auth_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/tollgate-dev/tollgate/auth"
)

func TestPrincipalContext(t *testing.T) {
	ctx := context.Background()
	if p, ok := auth.PrincipalFrom(ctx); ok || p != nil {
		t.Fatalf("PrincipalFrom(empty) = %v, %v; want nil, false", p, ok)
	}
	want := auth.Principal{AccountID: "acc_1", KeyID: "key_1", Scopes: auth.Scopes{"*"}, RatePlan: "10/1s"}
	ctx = auth.WithPrincipal(ctx, want)
	got, ok := auth.PrincipalFrom(ctx)
	if !ok {
		t.Fatal("PrincipalFrom after WithPrincipal: not found")
	}
	if diff := cmp.Diff(want, *got); diff != "" {
		t.Errorf("PrincipalFrom mismatch (-want +got):\n%s", diff)
	}
	// The stored Principal is a copy: changing want does not change it.
	want.AccountID = "acc_2"
	if got, _ := auth.PrincipalFrom(ctx); got.AccountID != "acc_1" {
		t.Errorf("PrincipalFrom().AccountID = %q after changing the original, want acc_1", got.AccountID)
	}
}
