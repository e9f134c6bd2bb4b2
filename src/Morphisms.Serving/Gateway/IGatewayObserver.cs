namespace Morphisms.Serving.Gateway;

/// <summary>What a gateway tells the host about each request (connection in confidential mode), for metrics.</summary>
public interface IGatewayObserver
{
    /// <summary>A request went to an instance of <see cref="BackendTarget.Revision"/>.</summary>
    void Forwarded(BackendTarget target);

    /// <summary>A request for <paramref name="host"/> was refused (queue full, timeout, no instance); <paramref name="revision"/> when known.</summary>
    void Refused(string host, string? revision);

    /// <summary>The first response byte of a request that waited at the activator, <paramref name="elapsed"/> after it arrived.</summary>
    void FirstByte(BackendTarget target, TimeSpan elapsed);
}
