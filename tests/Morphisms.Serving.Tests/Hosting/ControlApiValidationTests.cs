using System.Net;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json.Nodes;
using Morphisms.Serving.Hosting;
using Morphisms.Serving.Spec;

namespace Morphisms.Serving.Tests.Hosting;

/// <summary>
/// A spec or body the host cannot serve is a 400 naming the field, with nothing deployed: a scale block the autoscaler
/// refuses is caught before the revision is made (and registered with the KMS), and a JSON field of the wrong type is
/// the client's mistake, not a 500.
/// </summary>
public sealed partial class ControlApiValidationTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("morph-validation-fn-").FullName;

    public ControlApiValidationTests() => Directory.CreateDirectory(Path.Combine(_dir, "bundle"));

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("stableWindow: 5s", "scale.stableWindow: '5s' is not between 6s and 1h")]
    [InlineData("stableWindow: 1e400s", "scale.stableWindow: '1e400s' is not a duration")]
    [InlineData("scaleToZeroGracePeriod: 1e15h", "scale.scaleToZeroGracePeriod: '1e15h' is not a duration")]
    public async Task A_scale_block_the_autoscaler_refuses_is_a_400_and_deploys_nothing(string scale, string expected)
    {
        using var functions = new TestFunctions();
        await using var host = await functions.HostAsync(GatewayMode.Http, launcher: new FakeLauncher());
        using var http = TestFunctions.ControlClient(host);
        File.WriteAllText(Path.Combine(_dir, "function.yaml"), $$"""
            name: echo
            tee: none
            bundle: bundle
            command: ["dotnet", "app.dll"]
            scale: { min: 1, {{scale}} }
            """);

        using var response = await http.PostAsync("v1/functions", Json($$"""{"path": "{{_dir}}"}"""));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.StartsWith(expected, Assert.Single(await ErrorsAsync(response)), StringComparison.Ordinal);
        Assert.Equal("[]", await http.GetStringAsync("v1/functions"));
    }

    [Fact]
    public async Task A_spec_built_in_code_with_a_scale_block_the_autoscaler_refuses_is_refused_before_a_revision_is_made()
    {
        using var functions = new TestFunctions();
        var launcher = new FakeLauncher();
        await using var host = await functions.HostAsync(GatewayMode.Http, launcher: launcher);

        var error = await Assert.ThrowsAsync<ServingException>(() => host.DeployAsync(
            functions.Spec("echo", "a", FunctionTee.None, new ScaleSpec { StableWindow = TimeSpan.FromSeconds(5) }), CancellationToken.None));

        Assert.Equal("scale: stable window must be between 6s and 1h", error.Message);
        Assert.Empty(host.List());
        Assert.Equal(0, launcher.Attempts);
    }

    [Theory]
    [InlineData("""{"path": 5}""", "path: must be a string")]
    [InlineData("""{"path": ["a"]}""", "path: must be a string")]
    public async Task A_deploy_body_field_of_the_wrong_type_is_a_400(string body, string expected)
    {
        using var functions = new TestFunctions();
        await using var host = await functions.HostAsync(GatewayMode.Http, launcher: new FakeLauncher());
        using var http = TestFunctions.ControlClient(host);

        using var response = await http.PostAsync("v1/functions", Json(body));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.StartsWith(expected, Assert.Single(await ErrorsAsync(response)), StringComparison.Ordinal);
    }

    /// <summary>A spec path that exists but cannot be read is the client's mistake, named: not a bare 500.</summary>
    [Fact]
    public async Task A_spec_file_that_cannot_be_read_is_a_400_naming_it()
    {
        // A UNIX socket cannot be opened as a file, even by root (the tests' CI user).
        var spec = Path.Combine(_dir, "function.yaml");
        using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
        socket.Bind(new System.Net.Sockets.UnixDomainSocketEndPoint(spec));

        await AssertRefusedAsync(_dir, $"cannot read the function spec {spec}: ");
        await AssertRefusedAsync(spec, $"cannot read the function spec {spec}: ");
    }

    /// <summary>
    /// Any holder of the control token names the path: a device that never ends must not be read until memory runs out,
    /// nor the open of a FIFO hold the request until something writes to it, nor a large file be taken whole.
    /// </summary>
    [Fact]
    public async Task A_spec_path_that_is_a_device_a_FIFO_or_too_large_is_a_400_at_once()
    {
        var fifo = Path.Combine(_dir, "function.yaml");
        Assert.Equal(0, MkFifo(fifo, Convert.ToUInt32("600", 8)));
        var large = Path.Combine(_dir, "large.yaml");
        File.WriteAllText(large, "name: echo\n" + new string('#', 1024 * 1024) + "\n");
        using var functions = new TestFunctions();
        var launcher = new FakeLauncher();
        await using var host = await functions.HostAsync(GatewayMode.Http, launcher: launcher);
        using var http = TestFunctions.ControlClient(host);

        // Warm-up: the first request to a fresh host pays for JIT, Kestrel's first connection and the loader's first
        // use, which on a loaded machine can take seconds of its own; the bound below is about the paths, not that.
        var missing = Path.Combine(_dir, "missing");
        using (var warmUp = await http.PostAsync("v1/functions", Json(System.Text.Json.JsonSerializer.Serialize(new { path = missing }))).WaitAsync(TimeSpan.FromSeconds(30)))
        {
            Assert.Equal(HttpStatusCode.BadRequest, warmUp.StatusCode);
        }

        foreach (var (path, expected) in new[]
        {
            // Refused by its type, or (where that cannot be had) after its first MiB.
            ("/dev/zero", "cannot read the function spec /dev/zero: "),
            (fifo, $"cannot read the function spec {fifo}: not a regular file"),
            (_dir, $"cannot read the function spec {fifo}: not a regular file"),
            (large, $"cannot read the function spec {large}: larger than 1 MiB"),
        })
        {
            var watch = System.Diagnostics.Stopwatch.StartNew();
            var request = http.PostAsync("v1/functions", Json(System.Text.Json.JsonSerializer.Serialize(new { path })));
            try
            {
                // A FIFO whose open waited for a writer would never answer, and /dev/zero read whole would run until memory
                // ran out: a bound of seconds tells those from an answer slowed by a loaded machine.
                using var response = await request.WaitAsync(TimeSpan.FromSeconds(10));

                Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
                Assert.StartsWith(expected, Assert.Single(await ErrorsAsync(response)), StringComparison.Ordinal);
                Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"{path}: answered after {watch.Elapsed}");
            }
            finally
            {
                if (!request.IsCompleted && path != "/dev/zero")
                {
                    // A request stuck in the FIFO's open: a writer releases it, so the host can stop.
                    await using var writer = new FileStream(fifo, FileMode.Open, FileAccess.Write);
                }
            }
        }

        Assert.Equal(0, launcher.Attempts);
    }

    [LibraryImport("libc", EntryPoint = "mkfifo", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int MkFifo(string path, uint mode);

    [NotRootFact]
    public async Task A_spec_file_without_read_permission_is_a_400_naming_it()
    {
        var spec = Path.Combine(WriteFunction("closed"), "function.yaml");
        File.SetUnixFileMode(spec, UnixFileMode.None);

        await AssertRefusedAsync(spec, $"cannot read the function spec {spec}: ");
    }

    private static async Task AssertRefusedAsync(string path, string expected)
    {
        using var functions = new TestFunctions();
        var launcher = new FakeLauncher();
        await using var host = await functions.HostAsync(GatewayMode.Http, launcher: launcher);
        using var http = TestFunctions.ControlClient(host);

        using var response = await http.PostAsync("v1/functions", Json(System.Text.Json.JsonSerializer.Serialize(new { path })));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.StartsWith(expected, Assert.Single(await ErrorsAsync(response)), StringComparison.Ordinal);
        Assert.Equal(0, launcher.Attempts);
    }

    [Theory]
    [InlineData("""{"traffic": [{"revision": "latest", "percent": "50"}]}""", "traffic[0].percent: must be a whole number")]
    [InlineData("""{"traffic": [{"revision": "latest", "percent": 50.5}]}""", "traffic[0].percent: must be a whole number")]
    [InlineData("""{"traffic": [{"revision": "latest", "percent": 1e10}]}""", "traffic[0].percent: must be a whole number")]
    [InlineData("""{"traffic": [{"revision": 1, "percent": 100}]}""", "traffic[0].revision: must be a string")]
    [InlineData("""{"traffic": [{"revision": "latest", "percent": 100, "tag": true}]}""", "traffic[0].tag: must be a string")]
    [InlineData("""{"traffic": [5]}""", "traffic[0]: must be an object")]
    [InlineData("""{"traffic": {"revision": "latest"}}""", "traffic: required")]
    [InlineData("""{"traffic": [], "traffic": []}""", "the body is not JSON (or repeats a property): Duplicate property 'traffic'")]
    [InlineData("""{"traffic": [{"revision": "latest", "percent": 100, "percent": 0}]}""", "the body is not JSON (or repeats a property): Duplicate property 'percent'")]
    public async Task A_traffic_body_field_of_the_wrong_type_is_a_400(string body, string expected)
    {
        using var functions = new TestFunctions();
        await using var host = await functions.HostAsync(GatewayMode.Http, launcher: new FakeLauncher());
        await host.DeployAsync(functions.Spec("echo", "a", FunctionTee.None), CancellationToken.None);
        using var http = TestFunctions.ControlClient(host);

        using var response = await http.PutAsync("v1/functions/echo/traffic", Json(body));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.StartsWith(expected, Assert.Single(await ErrorsAsync(response)), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_bundle_file_that_cannot_be_measured_is_a_400_naming_it_and_changes_nothing()
    {
        using var functions = new TestFunctions();
        await using var host = await functions.HostAsync(GatewayMode.Http, launcher: new FakeLauncher());
        using var http = TestFunctions.ControlClient(host);
        var served = WriteFunction("served");
        using (var first = await http.PostAsync("v1/functions", Json($$"""{"path": "{{served}}"}""")))
        {
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        }

        // A dangling symlink: the loader refuses it, as measuring the bundle, which reads every file, could not open it.
        File.CreateSymbolicLink(Path.Combine(served, "bundle", "dangling"), "/nonexistent");
        var fresh = WriteFunction("fresh");
        File.CreateSymbolicLink(Path.Combine(fresh, "bundle", "dangling"), "/nonexistent");

        foreach (var path in new[] { served, fresh })
        {
            using var response = await http.PostAsync("v1/functions", Json($$"""{"path": "{{path}}"}"""));
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            var error = Assert.Single(await ErrorsAsync(response));
            Assert.StartsWith("bundle: ", error, StringComparison.Ordinal);
            Assert.Contains(Path.Combine(path, "bundle", "dangling"), error, StringComparison.Ordinal);
        }

        // The new function left no entry behind (listing it threw for want of a revision), and the served one kept its revision.
        using var list = await http.GetAsync("v1/functions");
        Assert.Equal(HttpStatusCode.OK, list.StatusCode);
        var listed = Assert.Single(JsonNode.Parse(await list.Content.ReadAsStringAsync())!.AsArray())!;
        Assert.Equal("served", listed["name"]!.GetValue<string>());
        Assert.Equal("served-00001", Assert.Single(host.Revisions("served")).Name);
    }

    [Fact]
    public async Task A_directory_link_loop_planted_after_the_spec_loaded_fails_the_deploy_fast_and_frees_the_lock()
    {
        using var functions = new TestFunctions();
        await using var host = await functions.HostAsync(GatewayMode.Http, launcher: new FakeLauncher());
        var path = WriteFunction("looped");
        var spec = FunctionSpecLoader.Load(path);

        // Between the loader's link check and the measurement under the change lock: a/x -> .., a/y -> ..
        var a = Directory.CreateDirectory(Path.Combine(path, "bundle", "a")).FullName;
        Directory.CreateSymbolicLink(Path.Combine(a, "x"), "..");
        Directory.CreateSymbolicLink(Path.Combine(a, "y"), "..");

        var error = await Assert.ThrowsAsync<ServingException>(
            () => host.DeployAsync(spec, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.StartsWith("bundle: ", error.Message, StringComparison.Ordinal);
        Assert.Contains("leads back to", error.Message, StringComparison.Ordinal);

        // The lock is free again: the next deploy goes through.
        Directory.Delete(a, recursive: true);
        var deployed = await host.DeployAsync(spec, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal("looped-00001", deployed.Revision);
    }

    private string WriteFunction(string name)
    {
        var directory = Directory.CreateDirectory(Path.Combine(_dir, name)).FullName;
        Directory.CreateDirectory(Path.Combine(directory, "bundle"));
        File.WriteAllText(Path.Combine(directory, "bundle", "app.txt"), name);
        File.WriteAllText(Path.Combine(directory, "function.yaml"), $$"""
            name: {{name}}
            tee: none
            bundle: bundle
            command: ["dotnet", "app.dll"]
            """);
        return directory;
    }

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    private static async Task<List<string>> ErrorsAsync(HttpResponseMessage response) =>
        JsonNode.Parse(await response.Content.ReadAsStringAsync())!["errors"]!.AsArray().Select(e => e!.GetValue<string>()).ToList();
}
