using System.Net;
using System.Text.Json.Nodes;

namespace Morphisms.Agent.Tests;

/// <summary>Stands in for the serving layer's cold-start report endpoint: captures the first POSTed report and its <c>Authorization</c>.</summary>
public sealed class ReportCollector : IDisposable
{
    private readonly HttpListener _listener = new();
    private readonly TaskCompletionSource<JsonObject> _received = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Listens on a free loopback port.</summary>
    public ReportCollector()
    {
        var port = TestProcesses.FreePort();
        Url = new Uri($"http://127.0.0.1:{port}/cold-start/");
        _listener.Prefixes.Add(Url.ToString());
        _listener.Start();
        _ = ServeAsync();
    }

    /// <summary>Where to POST.</summary>
    public Uri Url { get; }

    /// <summary>The first report.</summary>
    public Task<JsonObject> Received => _received.Task;

    /// <summary>The first report's <c>Authorization</c> header (null when it had none), set before <see cref="Received"/> completes.</summary>
    public string? Authorization { get; private set; }

    private async Task ServeAsync()
    {
        try
        {
            var context = await _listener.GetContextAsync();
            Authorization = context.Request.Headers["Authorization"];
            using var reader = new StreamReader(context.Request.InputStream);
            _received.TrySetResult(JsonNode.Parse(await reader.ReadToEndAsync())!.AsObject());
            context.Response.StatusCode = 204;
            context.Response.Close();
        }
        catch (Exception e) when (e is HttpListenerException or ObjectDisposedException)
        {
            _received.TrySetException(e);
        }
    }

    /// <inheritdoc />
    public void Dispose() => _listener.Close();
}
