using Morphisms.Kms.Attest;
using Morphisms.Kms.Http;

namespace Morphisms.Kms.Metrics;

/// <summary><c>sys/metrics?format=prometheus</c>.</summary>
internal static class MetricsRoutes
{
    public static void Register(RouteTable routes, KmsCore core, KmsMetrics metrics, ChallengeStore challenges)
    {
        var open = core.Options.UnauthenticatedMetrics;
        routes.Add(
            new Route("sys/metrics", "metrics") { Unauthenticated = open, AllowWhenSealed = open },
            (Operation.Read, (r, _, _) =>
            {
                var format = r.Fields.String("format") ?? "prometheus";
                if (format != "prometheus")
                {
                    throw KmsException.BadRequest($"unsupported metrics format '{format}': use format=prometheus");
                }

                return Task.FromResult<KmsResponse?>(new KmsResponse
                {
                    ContentType = "text/plain; version=0.0.4; charset=utf-8",
                    TextBody = metrics.Render(core.Initialized, core.Sealed, core.UnsealProgressCount, challenges.Spent),
                });
            }));
    }
}
