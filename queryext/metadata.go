package queryext // import "github.com/metricstor/metricstor/queryext"

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"

	"github.com/prometheus/prometheus/model/metadata"

	mstorage "github.com/metricstor/metricstor/storage"
)

// metadataHandler serves /api/v1/metadata from Store.MetricMetadata. Prometheus reads it from
// its scrape targets, which Metricstor has none of; parameters, limits, errors and JSON are
// Prometheus's (web/api/v1 metricMetadata).
type metadataHandler struct {
	store  mstorage.Store
	logger *slog.Logger
}

// apiResponse is Prometheus's response envelope.
type apiResponse struct {
	Status    string `json:"status"`
	Data      any    `json:"data,omitempty"`
	ErrorType string `json:"errorType,omitempty"`
	Error     string `json:"error,omitempty"`
}

func (h *metadataHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	limit := -1
	if s := r.FormValue("limit"); s != "" {
		var err error
		if limit, err = strconv.Atoi(s); err != nil {
			h.respond(w, http.StatusBadRequest, apiResponse{Status: "error", ErrorType: "bad_data", Error: "limit must be a number"})
			return
		}
	}
	limitPerMetric := -1
	if s := r.FormValue("limit_per_metric"); s != "" {
		var err error
		if limitPerMetric, err = strconv.Atoi(s); err != nil {
			h.respond(w, http.StatusBadRequest, apiResponse{Status: "error", ErrorType: "bad_data", Error: "limit_per_metric must be a number"})
			return
		}
	}

	all, err := h.store.MetricMetadata(r.Context(), r.FormValue("metric"))
	if err != nil {
		status, typ := http.StatusInternalServerError, "internal"
		if errors.Is(err, mstorage.ErrNotRunning) {
			status, typ = http.StatusServiceUnavailable, "unavailable"
		}
		h.respond(w, status, apiResponse{Status: "error", ErrorType: typ, Error: err.Error()})
		return
	}
	h.respond(w, http.StatusOK, apiResponse{Status: "success", Data: limitMetadata(all, limit, limitPerMetric)})
}

// limitMetadata applies Prometheus's rules: distinct entries per family, at most limitPerMetric
// of them when it is positive, at most limit families when it is not negative (so limit=0 gives
// none). Prometheus picks families in map order; we take them in name order, to be predictable.
func limitMetadata(all map[string][]metadata.Metadata, limit, limitPerMetric int) map[string][]metadata.Metadata {
	names := make([]string, 0, len(all))
	for name := range all {
		names = append(names, name)
	}
	slices.Sort(names)

	res := map[string][]metadata.Metadata{}
	for _, name := range names {
		if limit >= 0 && len(res) >= limit {
			break
		}
		var ms []metadata.Metadata
		for _, m := range all[name] {
			if limitPerMetric > 0 && len(ms) >= limitPerMetric {
				break
			}
			if !slices.Contains(ms, m) {
				ms = append(ms, m)
			}
		}
		if len(ms) > 0 {
			res[name] = ms
		}
	}
	return res
}

func (h *metadataHandler) respond(w http.ResponseWriter, status int, resp apiResponse) {
	b, err := json.Marshal(resp)
	if err != nil {
		h.logger.Error("error marshaling json response", "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if _, err := w.Write(b); err != nil {
		h.logger.Debug("error writing response", "err", err)
	}
}
