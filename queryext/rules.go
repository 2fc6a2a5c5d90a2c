package queryext // import "github.com/metricstor/metricstor/queryext"

import (
	"errors"
	"net"
	"net/url"
	"os"
	"strconv"

	"github.com/prometheus/prometheus/promql"

	mrules "github.com/metricstor/metricstor/rules"
	mstorage "github.com/metricstor/metricstor/storage"
)

// The promql extension implements the rules extension's QueryAPI (declared in rules/, the
// seam between the two) and serves the rules.State it is handed.

var _ mrules.QueryAPI = (*promqlExtension)(nil)

// rulesRef holds the served mrules.State (an interface cannot be stored in an atomic.Pointer).
type rulesRef struct{ src mrules.State }

func (e *promqlExtension) Engine() promql.QueryEngine {
	if e.api == nil {
		return nil
	}
	return e.api.engine
}

func (e *promqlExtension) Store() mstorage.Store { return e.store }

func (e *promqlExtension) ExternalURL() *url.URL { return e.externalURL }

func (e *promqlExtension) ServeRules(src mrules.State) {
	if src == nil {
		e.rules.Store(nil)
		return
	}
	e.rules.Store(&rulesRef{src})
}

// servedRules is the mrules.State the API serves now: the registered one or an empty one.
func (e *promqlExtension) servedRules() mrules.State {
	if r := e.rules.Load(); r != nil {
		return r.src
	}
	return noRules{}
}

// externalURL is http(s)://host:port of the bound listener. A wildcard address (0.0.0.0, ::) is
// replaced by the machine's host name, as Prometheus's default --web.external-url does.
func externalURL(addr net.Addr, tls bool) (*url.URL, error) {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return nil, errors.New("promql: listener is not TCP")
	}
	host := tcp.IP.String()
	if tcp.IP.IsUnspecified() {
		if h, err := os.Hostname(); err == nil && h != "" {
			host = h
		}
	}
	scheme := "http"
	if tls {
		scheme = "https"
	}
	return &url.URL{Scheme: scheme, Host: net.JoinHostPort(host, strconv.Itoa(tcp.Port))}, nil
}
