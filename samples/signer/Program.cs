// The Morphisms benchmark function: signs every message POSTed to it with Ed25519.
// Listens on 127.0.0.1:$PORT in plain HTTP (on the UNIX domain socket $MORPH_APP_SOCKET instead when morph-init names
// one, as it does under Gramine); morph-init terminates the attested TLS in front of it.
using System.Globalization;
using System.Net;
using System.Runtime.InteropServices;
using Microsoft.AspNetCore.Http.HttpResults;
using Morphisms.Samples.Signer;
using NSec.Cryptography;

const string Algorithm = "ed25519";

if (!TryPort(Environment.GetEnvironmentVariable("PORT"), out var port))
{
    Console.Error.WriteLine("signer: PORT must be a TCP port (1-65535)");
    return 2;
}

var socket = Environment.GetEnvironmentVariable("MORPH_APP_SOCKET") is { Length: > 0 } socketPath ? socketPath : null;
var endpoint = socket is not null ? $"unix:{socket}" : $"127.0.0.1:{port}";

var maxMessageBytes = 1024 * 1024;
if (Environment.GetEnvironmentVariable("SIGNER_MAX_MESSAGE_BYTES") is { Length: > 0 } limitText
    && !(int.TryParse(limitText, NumberStyles.None, CultureInfo.InvariantCulture, out maxMessageBytes) && maxMessageBytes > 0))
{
    Console.Error.WriteLine("signer: SIGNER_MAX_MESSAGE_BYTES must be a positive integer");
    return 2;
}

// Under morph-init a missing signing-key is an error unless the function opts into a generated key.
var generateKey = Environment.GetEnvironmentVariable("SIGNER_GENERATE_KEY");
if (generateKey is { Length: > 0 } and not ("true" or "false"))
{
    Console.Error.WriteLine($"signer: SIGNER_GENERATE_KEY must be 'true' or 'false' (or unset), not '{generateKey}'");
    return 2;
}

// Started early by morph-init (`MORPH_SECRETS_READY=stdin`, function.yaml env MORPH_APP_START=early): the runtime
// start-up, the app build and Kestrel's start below overlap attestation, but no secret is read and no request
// answered until morph-init writes "ready" on standard input. Without the variable, the secrets are already in place.
var secretsReady = Environment.GetEnvironmentVariable("MORPH_SECRETS_READY");
if (secretsReady is { Length: > 0 } and not "stdin")
{
    Console.Error.WriteLine($"signer: MORPH_SECRETS_READY must be 'stdin' (or unset), not '{secretsReady}'");
    return 2;
}

SigningKeyStore? keys = null;

// The empty builder (no config files, no logging, Kestrel core and routing only) starts ~100 ms sooner than
// CreateSlimBuilder on 2 cores; a function gets its settings from env anyway.
var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions { Args = args });
builder.WebHost.UseKestrelCore();
builder.Services.AddRoutingCore();
if (Environment.GetEnvironmentVariable("LOG_LEVEL") is { Length: > 0 } level)
{
    builder.Logging.AddSimpleConsole().SetMinimumLevel(ParseLevel(level));
}

builder.WebHost.ConfigureKestrel(kestrel =>
{
    kestrel.AddServerHeader = false;
    kestrel.Limits.MaxRequestBodySize = maxMessageBytes;
    if (socket is not null)
    {
        kestrel.ListenUnixSocket(socket);
    }
    else
    {
        kestrel.Listen(IPAddress.Loopback, port);
    }
});

var app = builder.Build();

// Completes with true once the signing key is loaded (false: never released). Every request waits for it, so an app
// that listens before release (started early) answers nothing, not even /healthz, until it has its key.
var released = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
app.Use(async (context, next) =>
{
    if (!await released.Task)
    {
        context.Abort();
        return;
    }

    await next(context);
});

app.MapGet("/healthz", () => "ok");

app.MapGet("/public-key", () =>
{
    var identity = keys!.Current;
    return TypedResults.Json(new PublicKeyResponse(identity.PublicKeyBase64, Algorithm, identity.Source), SignerJson.Relaxed.PublicKeyResponse);
});

app.MapPost("/sign", async Task<Results<JsonHttpResult<SignResponse>, JsonHttpResult<ErrorResponse>>> (HttpRequest request) =>
{
    if (request.ContentLength > maxMessageBytes)
    {
        return TooLarge();
    }

    byte[] message;
    try
    {
        message = await ReadBodyAsync(request, maxMessageBytes);
    }
    catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
    {
        return TooLarge();
    }
    catch (InvalidDataException)
    {
        return TooLarge();
    }

    if (message.Length == 0)
    {
        return TypedResults.Json(new ErrorResponse("empty message: POST the bytes to sign"), SignerJson.Relaxed.ErrorResponse, statusCode: StatusCodes.Status400BadRequest);
    }

    var identity = keys!.Current;
    var signature = SignatureAlgorithm.Ed25519.Sign(identity.Key, message);
    return TypedResults.Json(new SignResponse(Convert.ToBase64String(signature), identity.PublicKeyBase64, Algorithm), SignerJson.Relaxed.SignResponse);

    JsonHttpResult<ErrorResponse> TooLarge()
    {
        // The unread rest of the body makes the connection unusable: say so, so clients do not reuse it.
        request.HttpContext.Response.Headers.Connection = "close";
        return TypedResults.Json(
            new ErrorResponse($"message larger than {maxMessageBytes} bytes"), SignerJson.Relaxed.ErrorResponse, statusCode: StatusCodes.Status413PayloadTooLarge);
    }
});

var early = secretsReady == "stdin";
if (early)
{
    // Warm the signing path (libsodium load, first signature) while attestation runs; the throwaway key is never used.
    using (var warmup = Key.Create(SignatureAlgorithm.Ed25519))
    {
        SignatureAlgorithm.Ed25519.Sign(warmup, "warm-up"u8);
    }

    // Kestrel's start (~9 ms of the NativeAOT build's cold start on 2 cores) is off the path too: the port opens now,
    // and the gate above holds every request until the key is loaded.
    if (!await TryStartAsync(app, endpoint))
    {
        return 1;
    }

    Console.Error.WriteLine("signer: started early: waiting for 'ready' from morph-init on standard input (requests wait until then)");
    using var stdin = new StreamReader(Console.OpenStandardInput());
    var line = stdin.ReadLineAsync();

    // The host handles SIGTERM from here on; a stop while waiting must not leave the app blocked on its input.
    await Task.WhenAny(line, Task.Delay(Timeout.Infinite, app.Lifetime.ApplicationStopping));
    if (!line.IsCompleted || await line != "ready")
    {
        Console.Error.WriteLine(line.IsCompleted
            ? "signer: morph-init closed standard input without 'ready' (no attestation or no secrets): exiting"
            : "signer: stopped before 'ready': exiting");
        return await NotReleasedAsync(app, released);
    }
}

try
{
    keys = SigningKeyStore.Create(Environment.GetEnvironmentVariable("MORPH_SECRETS_DIR"), generateIfMissing: generateKey == "true");
}
catch (Exception e) when (e is FormatException or IOException or UnauthorizedAccessException)
{
    Console.Error.WriteLine($"signer: cannot use the signing key: {e.Message}");
    return early ? await NotReleasedAsync(app, released) : 1;
}

// New secret versions arrive as rewritten files plus SIGHUP (morph-init's default reload).
using var reload = PosixSignalRegistration.Create(PosixSignal.SIGHUP, context =>
{
    context.Cancel = true;
    var (_, message) = keys.Reload();
    Console.Error.WriteLine($"signer: SIGHUP: {message}");
});

released.SetResult(true);
var listening = $"signer: listening on http://{endpoint} (key: {keys.Current.Source}, public key {keys.Current.PublicKeyBase64})";
if (early)
{
    Console.Error.WriteLine(listening);
    await app.WaitForShutdownAsync();
    return 0;
}

app.Lifetime.ApplicationStarted.Register(() => Console.Error.WriteLine(listening));
if (!await TryStartAsync(app, endpoint))
{
    return 1;
}

await app.WaitForShutdownAsync();
return 0;

static async Task<bool> TryStartAsync(WebApplication app, string endpoint)
{
    try
    {
        await app.StartAsync();
        return true;
    }
    catch (IOException e)
    {
        // Most often the port (or socket path) is taken.
        Console.Error.WriteLine($"signer: cannot listen on {endpoint}: {e.Message}");
        return false;
    }
}

// Requests that arrived before release are dropped unanswered, then the host stops.
static async Task<int> NotReleasedAsync(WebApplication app, TaskCompletionSource<bool> released)
{
    released.TrySetResult(false);
    await app.StopAsync();
    return 1;
}

static bool TryPort(string? text, out int port)
{
    port = 8080;
    return string.IsNullOrEmpty(text)
        || (int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out port) && port is >= 1 and <= 65535);
}

static LogLevel ParseLevel(string level) => level.ToLowerInvariant() switch
{
    "trace" => LogLevel.Trace,
    "debug" => LogLevel.Debug,
    "info" or "information" => LogLevel.Information,
    "warn" or "warning" => LogLevel.Warning,
    "error" => LogLevel.Error,
    _ => LogLevel.Information,
};

// Reads at most `limit` bytes; Kestrel enforces the same limit for chunked bodies (413 BadHttpRequestException).
static async Task<byte[]> ReadBodyAsync(HttpRequest request, int limit)
{
    // Content-Length only sizes the first buffer, up to one chunk: a client that announces a large body and sends
    // nothing must not make the signer reserve it (thousands of such connections would fill an enclave's fixed memory).
    using var buffer = new MemoryStream(request.ContentLength is { } length ? (int)Math.Min(length, 16 * 1024) : 4096);
    var chunk = new byte[16 * 1024];
    int read;
    while ((read = await request.Body.ReadAsync(chunk, request.HttpContext.RequestAborted)) > 0)
    {
        if (buffer.Length + read > limit)
        {
            throw new InvalidDataException("message too large");
        }

        buffer.Write(chunk, 0, read);
    }

    return buffer.ToArray();
}
