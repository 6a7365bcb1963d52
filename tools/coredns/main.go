// Command coredns is CoreDNS (github.com/coredns/coredns, pinned in go.mod) with only the plugins
// the real node's cluster DNS uses: it answers for cluster.local from the Kubernetes API and
// nothing else (pods have no way out, so there is no upstream to forward to).
//
// CoreDNS's own main imports every plugin (cloud DNS providers included); importing a chosen set
// is its documented way to build a smaller server. The order in which plugins run comes from
// dnsserver.Directives, which lists every plugin, so the subset keeps upstream's order.
package main

import (
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"

	"github.com/coredns/coredns/coremain"
)

func main() {
	coremain.Run()
}
