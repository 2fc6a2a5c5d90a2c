package queryext

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAdminAPI: with enable_admin_api the snapshot endpoint answers as Prometheus's (the name
// <time>-<random hex>) and the store's snapshot is under <storage directory>/snapshots/<name>;
// delete_series checks its parameters as Prometheus does, then answers 501 naming why;
// clean_tombstones succeeds (there are none).
func TestAdminAPI(t *testing.T) {
	store := newTestStore(t, testMeta)
	loadTestData(t, store)
	base := startTestExtensionOn(t, store, func(c *Config) { c.EnableAdminAPI = true })

	res := postForm(t, base, "/api/v1/admin/tsdb/snapshot", nil)
	require.Equal(t, http.StatusOK, res.code, res.body)
	var snap struct {
		Status string `json:"status"`
		Data   struct {
			Name string `json:"name"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(res.body), &snap))
	assert.Equal(t, "success", snap.Status)
	assert.Regexp(t, regexp.MustCompile(`^\d{8}T\d{6}Z-[0-9a-f]{16}$`), snap.Data.Name)
	entries, err := os.ReadDir(filepath.Join(store.Dir(), "snapshots", snap.Data.Name))
	require.NoError(t, err)
	assert.NotEmpty(t, entries, "the snapshot directory holds the store's copy")

	res = postForm(t, base, "/api/v1/admin/tsdb/snapshot", url.Values{"skip_head": {"maybe"}})
	assert.Equal(t, http.StatusBadRequest, res.code)
	assert.JSONEq(t, `{"status":"error","errorType":"bad_data","error":"invalid parameter \"skip_head\": unable to parse boolean: strconv.ParseBool: parsing \"maybe\": invalid syntax"}`, res.body)

	res = postForm(t, base, "/api/v1/admin/tsdb/delete_series", url.Values{"match[]": {`{job="api"}`}})
	assert.Equal(t, http.StatusNotImplemented, res.code)
	assert.JSONEq(t, `{"status":"error","errorType":"internal","error":"`+errDeleteNotImplemented.Error()+`"}`, res.body)
	res = postForm(t, base, "/api/v1/admin/tsdb/delete_series", nil)
	assert.Equal(t, http.StatusBadRequest, res.code)
	assert.JSONEq(t, `{"status":"error","errorType":"bad_data","error":"no match[] parameter provided"}`, res.body)

	res = postForm(t, base, "/api/v1/admin/tsdb/clean_tombstones", nil)
	assert.Equal(t, http.StatusNoContent, res.code, res.body)
}

// TestAdminAPIDisabled: off by default, every admin endpoint answers as Prometheus without
// --web.enable-admin-api, and nothing is written.
func TestAdminAPIDisabled(t *testing.T) {
	store := newTestStore(t, testMeta)
	base := startTestExtensionOn(t, store, nil)
	for _, path := range []string{"snapshot", "delete_series", "clean_tombstones"} {
		res := postForm(t, base, "/api/v1/admin/tsdb/"+path, url.Values{"match[]": {"up"}})
		assert.Equal(t, http.StatusInternalServerError, res.code, path)
		assert.JSONEq(t, `{"status":"error","errorType":"unavailable","error":"admin APIs disabled"}`, res.body, path)
	}
	_, err := os.Stat(filepath.Join(store.Dir(), "snapshots"))
	assert.True(t, os.IsNotExist(err), "no snapshot directory: %v", err)
}
