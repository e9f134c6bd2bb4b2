// The smallest Morphisms function: GET / answers "hello from <function> (<revision>)".
// Listens on 127.0.0.1:$PORT in plain HTTP (on the UNIX domain socket $MORPH_APP_SOCKET instead when morph-init names
// one, as it does under Gramine); morph-init terminates the attested TLS in front of it.
using System.Globalization;
using System.Net;

var socket = Environment.GetEnvironmentVariable("MORPH_APP_SOCKET") is { Length: > 0 } socketPath ? socketPath : null;
var portText = Environment.GetEnvironmentVariable("PORT");
var port = 8080;
if (!string.IsNullOrEmpty(portText)
    && !(int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out port) && port is >= 1 and <= 65535))
{
    Console.Error.WriteLine("hello: PORT must be a TCP port (1-65535)");
    return 2;
}

// MORPH_FUNCTION / MORPH_REVISION when the platform sets them; Knative's names otherwise.
var function = FirstSet("MORPH_FUNCTION", "K_SERVICE") ?? "hello";
var revision = FirstSet("MORPH_REVISION", "K_REVISION") ?? "unknown";
var greeting = $"hello from {function} ({revision})\n";

// The empty builder (no config files, no logging, Kestrel core and routing only) starts ~100 ms sooner than
// CreateSlimBuilder on 2 cores; a function gets its settings from env anyway.
var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions { Args = args });
builder.WebHost.UseKestrelCore();
builder.Services.AddRoutingCore();
builder.WebHost.ConfigureKestrel(kestrel =>
{
    kestrel.AddServerHeader = false;
    kestrel.Limits.MaxRequestBodySize = 64 * 1024;
    if (socket is not null)
    {
        kestrel.ListenUnixSocket(socket);
    }
    else
    {
        kestrel.Listen(IPAddress.Loopback, port);
    }
});
var endpoint = socket is not null ? $"unix:{socket}" : $"127.0.0.1:{port}";

var app = builder.Build();
app.MapGet("/", () => greeting);
app.MapGet("/healthz", () => "ok");

app.Lifetime.ApplicationStarted.Register(() => Console.Error.WriteLine($"hello: listening on http://{endpoint}"));
try
{
    await app.RunAsync();
}
catch (IOException e)
{
    // Most often the port (or socket path) is taken.
    Console.Error.WriteLine($"hello: cannot listen on {endpoint}: {e.Message}");
    return 1;
}

return 0;

static string? FirstSet(params string[] names) =>
    names.Select(Environment.GetEnvironmentVariable).FirstOrDefault(value => !string.IsNullOrWhiteSpace(value));
