using System.Security.Cryptography;
using Morphisms.Deploy.Sgx;

namespace Morphisms.Deploy.Tests.Fuzz;

/// <summary>
/// <c>morph measure sgx</c> reads an enclave's <c>.sig</c> file, which comes from wherever the image came from. Mutated
/// (its exponent, headers, key, signature and q1/q2 above all), it must be read or refused with
/// <see cref="SigStructFormatException"/>; a bad signature is a <see cref="SigStruct.SignatureValid"/> of false.
/// </summary>
public sealed class SigStructFuzzTests
{
    private static readonly WireField[] Fields =
    [
        new("header1", 0, 8), new("vendor", 16, 4), new("date", 20, 4), new("header2", 24, 8), new("modulus.low", 128, 8),
        new("modulus.high", 504, 8), new("exponent", 512, 4), new("signature.low", 516, 8), new("signature.high", 892, 8),
        new("miscselect", 900, 4), new("attributes", 928, 8), new("isvprodid", 1024, 2), new("isvsvn", 1026, 2),
        new("q1.high", 1416, 8), new("q2.high", 1800, 8),
    ];

    [Fact]
    public void Sigstruct_is_read_or_refused_as_malformed()
    {
        FuzzSeed[] seeds =
        [
            new("release enclave", SigStructFactory.Build(SHA256.HashData("fuzz"u8), prodId: 1, svn: 2), Fields),
            new("debug enclave", SigStructFactory.Build(SHA256.HashData("debug"u8), prodId: 0xFFFF, svn: 0xFFFF, debug: true), Fields),
        ];
        var valid = 0;
        Fuzzer.Run("SigStruct.Parse", seed: 0x5165, iterations: 600, seeds, Mutations.Bytes, bytes =>
        {
            var sigStruct = SigStruct.Parse(bytes);
            valid += sigStruct.SignatureValid ? 1 : 0;
            _ = (sigStruct.Debug, Convert.ToHexString(sigStruct.MrSigner));
        }, typeof(SigStructFormatException));
        Assert.True(valid >= seeds.Length, "the unmutated files verify");
    }
}
