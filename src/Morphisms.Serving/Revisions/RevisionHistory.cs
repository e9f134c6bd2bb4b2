using System.Security.Cryptography;
using System.Text.Json;
using Morphisms.Attestation;
using Morphisms.Attestation.Simulated;
using Morphisms.Serving.Spec;

namespace Morphisms.Serving.Revisions;

/// <summary>
/// A function's revisions. Applying a spec creates a new revision when anything but the traffic
/// block changed — the code in the bundle, the launch configuration or the scale settings — and
/// otherwise keeps the latest, as Knative does. Revisions are never modified. Numbering starts after
/// <paramref name="previousGeneration"/>: the last revision number of a removed function of the same name, so a name
/// is never given to two codes.
/// </summary>
public sealed class RevisionHistory(string function, int previousGeneration = 0)
{
    private readonly List<(Revision Revision, string Identity)> _revisions = [];

    /// <summary>The function's name.</summary>
    public string Function { get; } = function;

    /// <summary>All revisions, oldest first.</summary>
    public IReadOnlyList<Revision> Revisions => _revisions.Select(r => r.Revision).ToList();

    /// <summary>The newest revision, or null before the first deploy.</summary>
    public Revision? Latest => _revisions.Count == 0 ? null : _revisions[^1].Revision;

    /// <summary>
    /// Applies <paramref name="spec"/>: returns the revision that now represents it and whether it is new.
    /// <paramref name="kmsCaSha256"/> is the KMS CA pin written into (and measured with) the launch configuration;
    /// <paramref name="measurementCache"/>, when given, spares unchanged files a second digest and records new ones.
    /// </summary>
    /// <exception cref="ArgumentException">The spec is for another function.</exception>
    public (Revision Revision, bool Created) Apply(FunctionSpec spec, DateTimeOffset now, string? kmsCaSha256 = null, SimulatedMeasurementCache? measurementCache = null)
    {
        if (spec.Name != Function)
        {
            throw new ArgumentException($"spec is for {spec.Name}, not {Function}", nameof(spec));
        }

        var launchConfig = LaunchConfig.For(spec, kmsCaSha256);
        var measurement = Hex.Of(spec.Tee == FunctionTee.Sgx
            ? SimulatedMeasurement.ForSgx(spec.Bundle, launchConfig, measurementCache)
            : SimulatedMeasurement.ForSnp(spec.Bundle, launchConfig, measurementCache));
        var identity = $"{measurement}/{ScaleIdentity(spec.Scale)}";
        if (_revisions.Count > 0 && _revisions[^1].Identity == identity)
        {
            return (_revisions[^1].Revision, false);
        }

        var revision = new Revision(NextName, NextGeneration, spec, launchConfig, measurement, now);
        _revisions.Add((revision, identity));
        return (revision, true);
    }

    /// <summary>The name <see cref="Apply"/> gives the next revision it creates.</summary>
    public string NextName => $"{Function}-{NextGeneration:D5}";

    private int NextGeneration => previousGeneration + _revisions.Count + 1;

    /// <summary>Finds a revision by name.</summary>
    public Revision? Find(string name) => _revisions.Select(r => r.Revision).FirstOrDefault(r => r.Name == name);

    private static string ScaleIdentity(ScaleSpec scale) =>
        Convert.ToHexStringLower(SHA256.HashData(JsonSerializer.SerializeToUtf8Bytes(scale)));
}
