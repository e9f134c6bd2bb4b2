namespace Morphisms.Attestation;

/// <summary>
/// One failed check. <see cref="Check"/> is a stable machine-readable name (for example
/// <c>snp.signature</c> or <c>sgx.tcb_status</c>); <see cref="Reason"/> says in plain words what was wrong.
/// Neither ever contains secret material.
/// </summary>
public sealed record CheckFailure(string Check, string Reason)
{
    /// <inheritdoc />
    public override string ToString() => $"{Check}: {Reason}";
}

/// <summary>
/// Collects the outcome of the checks a verifier or a policy runs, so every failure is reported
/// rather than stopping at the first one.
/// </summary>
public sealed class CheckLog
{
    private readonly List<CheckFailure> _failures = [];
    private readonly List<string> _warnings = [];

    /// <summary>Failed checks, in the order they were run.</summary>
    public IReadOnlyList<CheckFailure> Failures => _failures;

    /// <summary>Things that passed policy but deserve attention.</summary>
    public IReadOnlyList<string> Warnings => _warnings;

    /// <summary>True when no check failed.</summary>
    public bool Passed => _failures.Count == 0;

    /// <summary>Records a failed check.</summary>
    public void Fail(string check, string reason) => _failures.Add(new CheckFailure(check, reason));

    /// <summary>Records a warning.</summary>
    public void Warn(string warning) => _warnings.Add(warning);

    /// <summary>Records a failure when <paramref name="condition"/> is false; returns the condition.</summary>
    public bool Require(bool condition, string check, string reason)
    {
        if (!condition)
        {
            Fail(check, reason);
        }

        return condition;
    }

    /// <summary>Copies another log's failures and warnings into this one.</summary>
    public void Append(CheckLog other)
    {
        _failures.AddRange(other._failures);
        _warnings.AddRange(other._warnings);
    }
}
