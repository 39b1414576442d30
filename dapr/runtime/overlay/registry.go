// Orderflow's component registry for daprd.
//
// dapr/build.sh builds daprd with no component build tag and, through
// `go build -overlay`, puts this file in place of daprd's
// cmd/daprd/components/zz_notag.go (which otherwise panics at start-up).
// daprd then carries only the components listed here instead of the ~150 of
// `-tags stablecomponents`. To use another component type, register it here
// and run `make runtime` (the build stamp includes this file's hash).

package components

import (
	"context"

	lockredis "github.com/dapr/components-contrib/lock/redis"
	contribmiddleware "github.com/dapr/components-contrib/middleware"
	"github.com/dapr/components-contrib/middleware/http/ratelimit"
	"github.com/dapr/components-contrib/nameresolution/mdns"
	pubsubinmemory "github.com/dapr/components-contrib/pubsub/in-memory"
	pubsubredis "github.com/dapr/components-contrib/pubsub/redis"
	"github.com/dapr/components-contrib/secretstores/local/env"
	"github.com/dapr/components-contrib/secretstores/local/file"
	stateinmemory "github.com/dapr/components-contrib/state/in-memory"
	stateredis "github.com/dapr/components-contrib/state/redis"
	lockloader "github.com/dapr/dapr/pkg/components/lock"
	httpmiddlewareloader "github.com/dapr/dapr/pkg/components/middleware/http"
	nrloader "github.com/dapr/dapr/pkg/components/nameresolution"
	pubsubloader "github.com/dapr/dapr/pkg/components/pubsub"
	secretstoresloader "github.com/dapr/dapr/pkg/components/secretstores"
	stateloader "github.com/dapr/dapr/pkg/components/state"
	"github.com/dapr/dapr/pkg/middleware"
	"github.com/dapr/kit/logger"
)

func init() {
	stateloader.DefaultRegistry.RegisterComponent(stateredis.NewRedisStateStore, "redis")
	stateloader.DefaultRegistry.RegisterComponent(stateinmemory.NewInMemoryStateStore, "in-memory")
	pubsubloader.DefaultRegistry.RegisterComponent(pubsubredis.NewRedisStreams, "redis")
	pubsubloader.DefaultRegistry.RegisterComponent(pubsubinmemory.New, "in-memory")
	lockloader.DefaultRegistry.RegisterComponent(lockredis.NewStandaloneRedisLock, "redis")
	secretstoresloader.DefaultRegistry.RegisterComponent(file.NewLocalSecretStore, "local.file")
	secretstoresloader.DefaultRegistry.RegisterComponent(env.NewEnvSecretStore, "local.env")
	nrloader.DefaultRegistry.RegisterComponent(mdns.NewResolver, "mdns")
	httpmiddlewareloader.DefaultRegistry.RegisterComponent(
		func(log logger.Logger) httpmiddlewareloader.FactoryMethod {
			return func(metadata contribmiddleware.Metadata) (middleware.HTTP, error) {
				return ratelimit.NewRateLimitMiddleware(log).GetHandler(context.TODO(), metadata)
			}
		},
		"ratelimit",
	)
}
