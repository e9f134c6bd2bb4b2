using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Morphisms.Cli;
using Morphisms.Deploy.Sgx;

namespace Morphisms.Deploy.Tests;

public sealed class SigStructTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("morph-sig-").FullName;
    private static readonly byte[] MrEnclave = SHA256.HashData("enclave"u8);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void ParsesAndVerifiesASignedSigStruct()
    {
        var sig = SigStruct.Parse(SigStructFactory.Build(MrEnclave, prodId: 7, svn: 3));

        Assert.True(sig.SignatureValid);
        Assert.Equal(MrEnclave, sig.MrEnclave);
        Assert.Equal(SHA256.HashData(SigStructFactory.Parameters.Modulus!.Reverse().ToArray()), sig.MrSigner);
        Assert.Equal(7, sig.IsvProdId);
        Assert.Equal(3, sig.IsvSvn);
        Assert.False(sig.Debug);
        Assert.Equal(0xffffffffu, sig.MiscMask);
    }

    [Theory]
    [InlineData(5)]     // header (vendor area is signed)
    [InlineData(961)]   // enclavehash
    [InlineData(1026)]  // isvsvn
    [InlineData(600)]   // signature itself
    [InlineData(1100)]  // q1
    public void ATamperedByteFailsTheSignature(int offset)
    {
        var data = SigStructFactory.Build(MrEnclave, 1, 1);
        if (offset < 16)
        {
            offset = 20; // header1 is a format constant (rejected as format); tamper the signed DATE instead
        }

        data[offset] ^= 0x01;
        Assert.False(SigStruct.Parse(data).SignatureValid);
    }

    [Fact]
    public void WrongSizeAndExponentAreFormatErrors()
    {
        Assert.Contains("1808", Assert.Throws<SigStructFormatException>(() => SigStruct.Parse(new byte[1807])).Message);
        var data = SigStructFactory.Build(MrEnclave, 1, 1);
        data[512] = 1;
        data[514] = 1; // 65537
        Assert.Contains("exponent is 65537", Assert.Throws<SigStructFormatException>(() => SigStruct.Parse(data)).Message);
    }

    [Fact]
    public async Task CliPrintsTheRegistrySectionAndMapsFailuresToExitCodes()
    {
        var good = Write("good.sig", SigStructFactory.Build(MrEnclave, 9, 4));
        var (code, stdout, _) = await Run("measure", "sgx", "--sigstruct", good, "--json");
        Assert.Equal(0, code);
        var sgx = JsonNode.Parse(stdout)!["sgx"]!;
        Assert.Equal(Convert.ToHexStringLower(MrEnclave), sgx["mrenclaves"]![0]!.GetValue<string>());
        Assert.Equal(9, sgx["isv_prod_id"]!.GetValue<int>());
        Assert.Equal(4, sgx["min_isv_svn"]!.GetValue<int>());
        Assert.Equal(64, sgx["mrsigner"]!.GetValue<string>().Length);
        Assert.Equal(["mrenclaves", "mrsigner", "isv_prod_id", "min_isv_svn"], sgx.AsObject().Select(p => p.Key));

        var (textCode, text, _) = await Run("measure", "sgx", "--sigstruct", good);
        Assert.Equal(0, textCode);
        Assert.Contains($"mrenclave      {Convert.ToHexStringLower(MrEnclave)}", text);

        var tampered = SigStructFactory.Build(MrEnclave, 9, 4);
        tampered[1024] ^= 1;
        var (badCode, _, badErr) = await Run("measure", "sgx", "--sigstruct", Write("bad.sig", tampered));
        Assert.Equal(ExitCodes.Rejected, badCode);
        Assert.Contains("signature does not verify", badErr);

        var (sizeCode, _, sizeErr) = await Run("measure", "sgx", "--sigstruct", Write("short.sig", new byte[100]));
        Assert.Equal(ExitCodes.UsageOrInput, sizeCode);
        Assert.Contains("1808", sizeErr);

        var debug = Write("debug.sig", SigStructFactory.Build(MrEnclave, 9, 4, debug: true));
        var (debugCode, _, debugErr) = await Run("measure", "sgx", "--sigstruct", debug);
        Assert.Equal(0, debugCode);
        Assert.Contains("DEBUG attribute", debugErr);
    }

    private string Write(string name, byte[] data)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllBytes(path, data);
        return path;
    }

    internal static async Task<(int Code, string Stdout, string Stderr)> Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = await MorphCli.RunAsync(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }
}
