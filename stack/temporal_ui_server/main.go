// Command temporal-ui serves the Temporal Web UI against one Temporal frontend.
//
// The cluster profile runs the Temporal server itself (stack/temporal_server.py), which has no
// Web UI of its own, where the dev server embeds one. This is that same UI server, the
// github.com/temporalio/ui-server/v2 module at the version the temporal CLI of the dev profile
// embeds, configured as the CLI configures it (internal/devserver/server.go in temporalio/cli):
// the same public path under the ops portal and the same same-origin codec endpoint, so the ops
// portal's proxy (portal/temporal_ui.py) serves either profile's UI unchanged.
// stack/temporal_ui_server.py builds it once into ~/.cache/ledgerflow and starts it.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uiserveroptions "github.com/temporalio/ui-server/v2/server/server_options"
)

func main() {
	ip := flag.String("ip", "127.0.0.1", "address to listen on (loopback: staff reach the UI through the ops portal)")
	port := flag.Int("port", 8233, "port to listen on")
	address := flag.String("address", "127.0.0.1:7233", "the Temporal frontend's gRPC address")
	publicPath := flag.String("public-path", "", "the path the UI is served under (the ops portal's, e.g. /ops/temporal)")
	codecEndpoint := flag.String("codec-endpoint", "", "the remote codec the browser calls to decode payloads")
	namespace := flag.String("namespace", "default", "the namespace the UI opens first")
	flag.Parse()
	if *port <= 0 || *port > 65535 {
		log.Fatalf("temporal-ui: bad --port %d", *port)
	}

	cfg := &uiconfig.Config{
		Host:                *ip,
		Port:                *port,
		TemporalGRPCAddress: *address,
		EnableUI:            true,
		PublicPath:          *publicPath,
		DefaultNamespace:    *namespace,
		Codec:               uiconfig.Codec{Endpoint: *codecEndpoint},
		// As the CLI's dev server: the UI's CSRF cookie over plain HTTP on loopback.
		CORS:     uiconfig.CORS{CookieInsecure: true},
		HideLogs: true,
		// No call out to temporal.io for news: the machine may have no way out, and the UI
		// must not depend on it.
		DisableNewsFetch: true,
	}
	server := uiserver.NewServer(uiserveroptions.WithConfigProvider(cfg))

	// Start blocks; a signal stops the server and the process exits 0.
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	failed := make(chan error, 1)
	go func() { failed <- server.Start() }()
	fmt.Printf("temporal-ui listening on %s, frontend %s\n", net.JoinHostPort(*ip, strconv.Itoa(*port)), *address)
	select {
	case err := <-failed:
		if err != nil {
			log.Fatalf("temporal-ui: %v", err)
		}
	case <-stop:
		server.Stop()
	}
}
