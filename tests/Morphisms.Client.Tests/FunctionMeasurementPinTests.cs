using System.Security.Cryptography;
using Morphisms.Attestation;
using Morphisms.Client.Functions;

namespace Morphisms.Client.Tests;

/// <summary>
/// Function measurement pins tied to their TEE, checked against function certificates as attest-login issues them: the
/// TEE the certificate names must be the pin's as well as the value, so the same 48 bytes as an SNP MEASUREMENT and as a
/// TDX MRTD are two different pins; a TDX function is pinned by its MRTD, the only TDX value its certificate carries.
/// </summary>
public sealed class FunctionMeasurementPinTests : IDisposable
{
    private const string Host = "signer.fn.morphisms.local";
    private readonly TestPki _pki = new();
    private readonly byte[] _sha384 = SHA384.HashData("signer bundle"u8);
    private readonly byte[] _mrEnclave = SHA256.HashData("signer enclave"u8);

    public void Dispose() => _pki.Dispose();

    private IReadOnlyList<string> Validate(string tee, byte[] measurement, string pin)
    {
        using var leaf = _pki.Leaf("signer", Host, measurement, tee: tee);
        var expectation = new FunctionExpectation { Function = "signer", Host = Host, AllowSimulated = true, Measurement = FunctionMeasurementPin.Parse(pin) };
        return FunctionCertificateValidator.Validate(leaf, [_pki.Intermediate], _pki.Root, expectation, DateTimeOffset.UtcNow, chainCache: null, revocation: null, out _);
    }

    private static string Hex(byte[] value) => Convert.ToHexStringLower(value);

    /// <summary>The same bytes under another TEE's name: what an untyped comparison accepted, refused naming both TEEs.</summary>
    [Theory]
    [InlineData("tdx", "snp:")]
    [InlineData("tdx", "")]
    [InlineData("snp", "tdx:")]
    public void A_pin_of_another_tee_is_refused_even_with_the_same_bytes(string attestedTee, string prefix)
    {
        var failures = Validate(attestedTee, _sha384, prefix + Hex(_sha384));

        var failure = Assert.Single(failures);
        Assert.StartsWith($"identity: the instance was attested by {attestedTee}", failure, StringComparison.Ordinal);
        Assert.Contains("one TEE's measurement never stands for another's", failure);
    }

    [Fact]
    public void A_typed_pin_of_the_attested_tee_and_value_passes()
    {
        Assert.Empty(Validate("snp", _sha384, "snp:" + Hex(_sha384)));
        Assert.Empty(Validate("tdx", _sha384, "tdx:" + Hex(_sha384).ToUpperInvariant()));
        Assert.Empty(Validate("sgx", _mrEnclave, "sgx:" + Hex(_mrEnclave)));
    }

    [Fact]
    public void A_wrong_value_of_the_right_tee_is_refused()
    {
        var other = SHA384.HashData("another bundle"u8);
        foreach (var tee in new[] { "snp", "tdx" })
        {
            var failure = Assert.Single(Validate(tee, _sha384, $"{tee}:{Hex(other)}"));
            Assert.Equal($"identity: measurement {tee}:{Hex(_sha384)} is not the expected {tee}:{Hex(other)}", failure);
        }

        Assert.Contains("is not the expected sgx:", Assert.Single(Validate("sgx", _mrEnclave, "sgx:" + new string('0', 64))));
    }

    /// <summary>Untyped values keep working where they were complete: 96 digits SNP, 64 digits SGX (with or without 0x).</summary>
    [Fact]
    public void Bare_hex_is_read_as_the_snp_or_sgx_measurement_of_its_size()
    {
        Assert.Equal(TeeType.Snp, FunctionMeasurementPin.Parse(Hex(_sha384)).Tee);
        Assert.Equal(TeeType.Sgx, FunctionMeasurementPin.Parse(" 0x" + Hex(_mrEnclave).ToUpperInvariant()).Tee);
        Assert.Empty(Validate("snp", _sha384, Hex(_sha384)));
        Assert.Empty(Validate("sgx", _mrEnclave, Hex(_mrEnclave)));
        Assert.Equal(FunctionMeasurementPin.Snp(_sha384), FunctionMeasurementPin.Parse(Hex(_sha384)));
        Assert.Equal("snp:" + Hex(_sha384), FunctionMeasurementPin.Parse(Hex(_sha384).ToUpperInvariant()).ToString());
    }

    [Theory]
    [InlineData("xyz", "not a hexadecimal string: a function measurement is snp:MEASUREMENT")]
    [InlineData("abc", "not a hexadecimal string")]
    [InlineData("0011", "an untyped measurement of 2 bytes: a function measurement is")]
    [InlineData("sev:00", "'sev:' is not a TEE")]
    [InlineData("snp:00", "snp: MEASUREMENT must be 96 hex digits, not 2")]
    [InlineData("sgx:zz", "sgx: MRENCLAVE is not hexadecimal")]
    [InlineData("tdx:", "tdx: MRTD must be 96 hex digits, not 0")]
    public void Malformed_values_are_refused_with_the_reason(string text, string reason)
    {
        Assert.Contains(reason, Assert.Throws<FormatException>(() => FunctionMeasurementPin.Parse(text)).Message);
    }

    /// <summary>The KMS's five-register TDX form: the certificate has no RTMR to compare, so it is refused, not half checked.</summary>
    [Fact]
    public void A_tdx_pin_with_rtmrs_is_refused_since_the_certificate_carries_only_mrtd()
    {
        var value = new string('a', 96);
        var refused = Assert.Throws<FormatException>(() => FunctionMeasurementPin.Parse("tdx:" + string.Join('/', Enumerable.Repeat(value, 5))));
        Assert.StartsWith("tdx: a function is pinned by MRTD alone (tdx:MRTD, 96 hex digits)", refused.Message, StringComparison.Ordinal);
        Assert.Contains("RTMR values given here could not be checked", refused.Message);
    }

    [Fact]
    public void A_value_of_the_wrong_size_for_its_tee_is_refused()
    {
        Assert.Throws<ArgumentException>(() => FunctionMeasurementPin.Snp(new byte[32]));
        Assert.Throws<ArgumentException>(() => FunctionMeasurementPin.Sgx(new byte[48]));
        Assert.Throws<ArgumentException>(() => FunctionMeasurementPin.Tdx(new byte[32]));
        Assert.Contains("sgx: MRENCLAVE must be 64 hex digits, not 96", Assert.Throws<FormatException>(() => FunctionMeasurementPin.Parse("sgx:" + Hex(_sha384))).Message);
    }
}
