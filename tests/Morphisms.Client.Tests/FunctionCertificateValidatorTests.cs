using System.Reflection;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Morphisms.Client.Functions;

namespace Morphisms.Client.Tests;

public sealed class FunctionCertificateValidatorTests : IDisposable
{
    private const string Host = "signer.fn.morphisms.local";
    private readonly TestPki _pki = new();
    private readonly byte[] _measurement = SHA384.HashData("signer bundle"u8);

    public void Dispose() => _pki.Dispose();

    private FunctionExpectation Expect(bool allowSimulated = true, FunctionMeasurementPin? measurement = null) =>
        new() { Function = "signer", Host = Host, AllowSimulated = allowSimulated, Measurement = measurement };

    [Fact]
    public void A_certificate_from_attest_login_chaining_to_the_pinned_root_is_accepted()
    {
        using var leaf = _pki.Leaf("signer", Host, _measurement);
        var failures = FunctionCertificateValidator.Validate(leaf, [_pki.Intermediate], _pki.Root, Expect(measurement: FunctionMeasurementPin.Snp(_measurement)), DateTimeOffset.UtcNow, chainCache: null, revocation: null, out var identity);
        Assert.Empty(failures);
        Assert.Equal("signer", identity!.Function);
        Assert.Equal(_measurement, identity.Measurement);
    }

    [Fact]
    public void After_an_intermediate_rotation_new_leaves_still_verify_against_the_same_root()
    {
        using var before = _pki.Leaf("signer", Host, _measurement);
        var oldIntermediate = _pki.Intermediate;
        _pki.RotateIntermediate();
        using var after = _pki.Leaf("signer", Host, _measurement);
        Assert.Empty(FunctionCertificateValidator.Validate(after, [_pki.Intermediate], _pki.Root, Expect(), DateTimeOffset.UtcNow, chainCache: null, revocation: null, out _));
        Assert.Empty(FunctionCertificateValidator.Validate(before, [oldIntermediate], _pki.Root, Expect(), DateTimeOffset.UtcNow, chainCache: null, revocation: null, out _));
        // A leaf presented with the wrong intermediate does not chain.
        Assert.NotEmpty(FunctionCertificateValidator.Validate(after, [oldIntermediate], _pki.Root, Expect(), DateTimeOffset.UtcNow, chainCache: null, revocation: null, out _));
    }

    [Fact]
    public void Another_root_is_refused()
    {
        using var other = new TestPki();
        using var leaf = other.Leaf("signer", Host, _measurement);
        var failures = FunctionCertificateValidator.Validate(leaf, [other.Intermediate], _pki.Root, Expect(), DateTimeOffset.UtcNow, chainCache: null, revocation: null, out _);
        Assert.Contains(failures, f => f.StartsWith("chain:", StringComparison.Ordinal));
    }

    [Fact]
    public void Wrong_function_host_measurement_or_a_simulated_identity_are_refused_by_name()
    {
        using var other = _pki.Leaf("hello", Host, _measurement);
        Assert.Contains(FunctionCertificateValidator.Validate(other, [_pki.Intermediate], _pki.Root, Expect(), DateTimeOffset.UtcNow, chainCache: null, revocation: null, out _),
            f => f.Contains("belongs to function 'hello'", StringComparison.Ordinal));

        using var otherHost = _pki.Leaf("signer", "evil.example", _measurement);
        Assert.Contains(FunctionCertificateValidator.Validate(otherHost, [_pki.Intermediate], _pki.Root, Expect(), DateTimeOffset.UtcNow, chainCache: null, revocation: null, out _),
            f => f.StartsWith("host:", StringComparison.Ordinal));

        using var leaf = _pki.Leaf("signer", Host, _measurement);
        Assert.Contains(FunctionCertificateValidator.Validate(leaf, [_pki.Intermediate], _pki.Root, Expect(measurement: FunctionMeasurementPin.Snp(new byte[48])), DateTimeOffset.UtcNow, chainCache: null, revocation: null, out _),
            f => f.Contains("not the expected", StringComparison.Ordinal));
        Assert.Contains(FunctionCertificateValidator.Validate(leaf, [_pki.Intermediate], _pki.Root, Expect(allowSimulated: false), DateTimeOffset.UtcNow, chainCache: null, revocation: null, out _),
            f => f.Contains("simulated", StringComparison.Ordinal));
    }

    [Fact]
    public void A_certificate_without_attested_identity_or_expired_is_refused()
    {
        using var plain = _pki.Leaf("signer", Host, _measurement, withIdentity: false);
        Assert.Contains(FunctionCertificateValidator.Validate(plain, [_pki.Intermediate], _pki.Root, Expect(), DateTimeOffset.UtcNow, chainCache: null, revocation: null, out _),
            f => f.Contains("no attested identity", StringComparison.Ordinal));

        using var leaf = _pki.Leaf("signer", Host, _measurement, lifetime: TimeSpan.FromMinutes(10));
        Assert.Contains(FunctionCertificateValidator.Validate(leaf, [_pki.Intermediate], _pki.Root, Expect(), DateTimeOffset.UtcNow.AddHours(1), chainCache: null, revocation: null, out _),
            f => f.StartsWith("chain:", StringComparison.Ordinal));
    }

    [Fact]
    public void Outside_the_library_a_function_certificate_is_checked_only_through_FunctionHttpHandler_which_checks_revocation()
    {
        // The validator's public overloads checked no revocation: a library user calling them got a weaker check than
        // morph invoke. The only public method that takes an expectation is the handler's, revocation required by default.
        var takers = typeof(FunctionHttpHandler).Assembly.GetExportedTypes()
            .Where(t => t != typeof(FunctionExpectation)) // a record: its equality members take one
            .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.Static | BindingFlags.Instance | BindingFlags.DeclaredOnly))
            .Where(m => m.GetParameters().Any(p => p.ParameterType == typeof(FunctionExpectation)))
            .Select(m => $"{m.DeclaringType!.Name}.{m.Name}")
            .Distinct();
        Assert.Equal(["FunctionHttpHandler.Create"], takers);
    }
}
