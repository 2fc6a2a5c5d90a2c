package queryext

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
)

// With `auth:`, the authenticator is a dependency too, so that the collector starts it before
// the API serves requests (basicauth panics on a request before its Start).
func TestDependenciesIncludeAuthenticator(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	conf := confmap.NewFromStringMap(map[string]any{"auth": map[string]any{"authenticator": "basicauth/api"}})
	require.NoError(t, conf.Unmarshal(cfg))
	ext, err := NewFactory().Create(context.Background(), nopSettings(), cfg)
	require.NoError(t, err)
	assert.Equal(t,
		[]component.ID{component.MustNewID("metricstor"), component.MustNewIDWithName("basicauth", "api")},
		ext.(*promqlExtension).Dependencies())
}
