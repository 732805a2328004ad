package logjson_test

import (
	"log/slog"
	"os"
	"time"

	"github.com/tollgate-dev/tollgate/logjson"
)

func ExampleHandler_Access() {
	h := logjson.New(os.Stdout, nil)
	h.Access(&logjson.Access{
		Time: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC), Level: slog.LevelInfo,
		RequestID: "req_example", Method: "GET", Route: "GET /v1/leads/{id}", Path: "/v1/leads/lead_1",
		Status: 404, Code: "NOT_FOUND", Bytes: 131, Duration: 420 * time.Microsecond, KeyID: "key_1",
	})
	// Output:
	// {"time":"2026-11-22T10:00:00.000Z","level":"INFO","msg":"request","request_id":"req_example","method":"GET","route":"GET /v1/leads/{id}","path":"/v1/leads/lead_1","status":404,"code":"NOT_FOUND","bytes":131,"duration_ms":0.42,"key_id":"key_1"}
}
