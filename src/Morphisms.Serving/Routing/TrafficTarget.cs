namespace Morphisms.Serving.Routing;

/// <summary>One entry of a function's traffic block: a revision, its share, and optionally a tag.</summary>
/// <param name="Revision">Revision name, e.g. <c>signer-00002</c>.</param>
/// <param name="Percent">Share of the function's main host name, 0–100.</param>
/// <param name="Tag">When set, the revision is also reachable at <c>&lt;tag&gt;-&lt;function&gt;.&lt;domain&gt;</c>.</param>
public sealed record TrafficTarget(string Revision, int Percent, string? Tag = null);
