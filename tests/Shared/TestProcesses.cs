using System.Net;
using System.Net.Sockets;

namespace Morphisms.Testing;

/// <summary>What tests that start real child processes need: the dotnet host and free loopback ports.</summary>
public static class TestProcesses
{
    /// <summary>The dotnet host running the tests (<c>dotnet test</c> sets DOTNET_HOST_PATH), else dotnet on PATH.</summary>
    public static string DotnetHost =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host
        : Environment.ProcessPath is { } self && Path.GetFileNameWithoutExtension(self) == "dotnet" ? self
        : "dotnet";

    /// <summary>A loopback port nothing listens on right now.</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
