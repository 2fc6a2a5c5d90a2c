package queryext

import (
	"net"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestExternalURL: the base of alerts' generatorURL is the bound address, with the host name for
// a wildcard address, https with TLS.
func TestExternalURL(t *testing.T) {
	host, err := os.Hostname()
	require.NoError(t, err)
	for _, tt := range []struct {
		addr net.Addr
		tls  bool
		want string
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9090}, false, "http://127.0.0.1:9090"},
		{&net.TCPAddr{IP: net.IPv4zero, Port: 19090}, false, "http://" + net.JoinHostPort(host, "19090")},
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 9090}, true, "https://" + net.JoinHostPort(host, "9090")},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 9090}, false, "http://[::1]:9090"},
	} {
		u, err := externalURL(tt.addr, tt.tls)
		require.NoError(t, err)
		assert.Equal(t, tt.want, u.String())
	}
	_, err = externalURL(&net.UnixAddr{Name: "/tmp/x", Net: "unix"}, false)
	assert.EqualError(t, err, "promql: listener is not TCP")
}
