package api

import (
	"net/http"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/middleware"
)

// MaintenanceState is the body of GET and PUT /v1/admin/maintenance.
type MaintenanceState struct {
	Enabled bool `json:"enabled"`
}

func (a *API) getMaintenance(w http.ResponseWriter, r *http.Request) {
	respond(w, r, http.StatusOK, MaintenanceState{Enabled: a.cfg.Maintenance.On()})
}

func (a *API) setMaintenance(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Enabled *bool `json:"enabled"`
	}
	if err := middleware.DecodeJSON(r, &req, middleware.DecodeOptions{Required: []string{"enabled"}}); err != nil {
		apierror.Write(w, r, err)
		return
	}
	a.cfg.Maintenance.Set(*req.Enabled)
	a.cfg.Logger.Warn("maintenance mode set", "enabled", *req.Enabled, "key_id", principal(r).KeyID,
		"request_id", middleware.RequestIDFrom(r.Context()))
	respond(w, r, http.StatusOK, MaintenanceState{Enabled: *req.Enabled})
}
