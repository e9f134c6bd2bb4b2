namespace Morphisms.Serving.Hosting;

/// <summary>The outcome of a deploy.</summary>
/// <param name="Function">The function.</param>
/// <param name="Revision">The revision now representing the spec.</param>
/// <param name="Created">False when the spec matched the latest revision (only traffic may have changed).</param>
/// <param name="Host">The function's host name.</param>
/// <param name="Measurement">The revision's measurement (hex).</param>
/// <param name="Kms">What happened at the KMS registry.</param>
/// <param name="ExpectMeasurement">
/// What a client passes to <c>morph invoke --expect-measurement</c> to accept only this revision's instances
/// (<c>snp:HEX</c>, the TEE and value their certificates carry), or null when the host cannot know it: a plain function
/// has no certificate to check, and a hardware TEE's measurement is the one the hardware reports, not the simulated
/// digest in <paramref name="Measurement"/>.
/// </param>
/// <param name="Rollout">
/// How the traffic moved: at once (the function's first route, a revision at <c>scale.initial: 0</c>, or nothing that
/// needs a first instance), or once the revisions it moved to had a ready instance, with how long that took. A revision
/// that did not get ready within its progress deadline is no result but a <see cref="ServingException.NotReady"/>.
/// </param>
public sealed record DeployResult(string Function, string Revision, bool Created, string Host, string Measurement, string Kms, string? ExpectMeasurement, string Rollout);

/// <summary>The outcome of a removal (<c>morph rm</c>).</summary>
/// <param name="Removed">The function, gone from this host: its route and instances.</param>
/// <param name="KmsNote">The KMS's note when it keeps the name for the function's owners (a tombstone), else null.</param>
/// <param name="KmsError">
/// Why the KMS registration could not be deleted (KMS sealed, unreachable, the token refused), else null: the function's
/// code can then still log in wherever it runs, until someone deletes the registration.
/// </param>
public sealed record RemoveResult(string Removed, string? KmsNote, string? KmsError);

/// <summary>One function in <c>morph ls</c>.</summary>
/// <param name="Name">The function.</param>
/// <param name="Host">Its host name.</param>
/// <param name="Tee">Its TEE (latest revision).</param>
/// <param name="Latest">Its newest revision.</param>
/// <param name="Traffic">The traffic block with live state per revision.</param>
public sealed record FunctionStatus(string Name, string Host, string Tee, string Latest, IReadOnlyList<TrafficStatus> Traffic);

/// <summary>One traffic entry with its revision's state.</summary>
/// <param name="Revision">The revision.</param>
/// <param name="Percent">Its share of the main host.</param>
/// <param name="Tag">Its tag, if any.</param>
/// <param name="TagHost">The tag's host name, if any.</param>
/// <param name="Ready">Ready (routed) instances.</param>
/// <param name="Desired">Instances the autoscaler wants.</param>
/// <param name="Standby">Warm-pool instances ready.</param>
/// <param name="Reason">The autoscaler's latest reason.</param>
public sealed record TrafficStatus(string Revision, int Percent, string? Tag, string? TagHost, int Ready, int Desired, int Standby, string? Reason);

/// <summary>One revision in <c>morph revisions</c>.</summary>
/// <param name="Name">The revision.</param>
/// <param name="Generation">Its generation.</param>
/// <param name="Created">When it was created.</param>
/// <param name="Measurement">Its measurement (hex).</param>
/// <param name="Tee">Its TEE.</param>
/// <param name="Percent">Its share of the main host (0 when not in the traffic block).</param>
/// <param name="Tags">Its tags.</param>
/// <param name="Ready">Ready instances.</param>
/// <param name="Crashes">Instance crashes seen.</param>
public sealed record RevisionStatus(string Name, int Generation, DateTimeOffset Created, string Measurement, string Tee, int Percent, IReadOnlyList<string> Tags, int Ready, int Crashes);

/// <summary>A request that cannot be carried out (unknown function or revision, invalid traffic); the control API answers 400/404, 503 when <see cref="Unavailable"/>, 502 when <see cref="Upstream"/>, 409 when <see cref="NotReady"/>.</summary>
public sealed class ServingException(string message, bool notFound = false) : Exception(message)
{
    /// <summary>True when something named does not exist.</summary>
    public bool NotFound { get; } = notFound;

    /// <summary>True when the request was refused because the host is stopping, not because of anything in it.</summary>
    public bool Unavailable { get; init; }

    /// <summary>True when a service the host relies on (the KMS) failed, not anything in the request: 502, not 400.</summary>
    public bool Upstream { get; init; }

    /// <summary>
    /// True when a deploy or traffic change would have moved traffic to a revision that did not get a ready instance
    /// within its progress deadline: the route stayed as it was (the message says how), and a deploy's revision was made
    /// and registered all the same. 409: the request was sound, the function's state refused it.
    /// </summary>
    public bool NotReady { get; init; }
}
