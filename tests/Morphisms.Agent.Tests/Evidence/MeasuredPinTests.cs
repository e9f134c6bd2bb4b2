using System.Security.Cryptography;
using System.Text;
using Morphisms.Agent.Evidence;
using Morphisms.Agent.Kms;
using Morphisms.Attestation.Abi.Dcap;
using Morphisms.Attestation.Abi.Snp;
using Morphisms.Attestation.Simulated;

namespace Morphisms.Agent.Tests.Evidence;

/// <summary>
/// The measured KMS CA pin as each provider reads it: SNP HOST_DATA from fake configfs-tsm trees (real captured reports,
/// which carry none, and synthetic ones that do), TDX MRCONFIGID from the TD's own report and never from the quote a
/// configfs-tsm tree answers with, the Gramine manifest variable, and the simulated TEE.
/// </summary>
public sealed class MeasuredPinTests
{
    private const string Entry = "entry0";

    /// <summary>A simulated SNP report whose HOST_DATA is <paramref name="hostData"/>.</summary>
    public static byte[] SnpReportWithHostData(byte[] hostData)
    {
        using var authority = SimulatedTeeAuthority.Create(TimeProvider.System);
        return authority.CreateSnpReport(new SimulatedSnpReportRequest
        {
            ReportData = RandomNumberGenerator.GetBytes(64),
            Measurement = SHA384.HashData("some build"u8),
            HostData = hostData,
        });
    }

    /// <summary>A fake configfs-tsm tree whose entry answers with <paramref name="outblob"/>.</summary>
    public static FakeDeviceTree ConfigFsTree(string provider, byte[] outblob, string entry = Entry)
    {
        var tree = new FakeDeviceTree();
        tree.Write($"{entry}/provider", provider + "\n");
        tree.Write($"{entry}/generation", "1\n");
        tree.Write($"{entry}/outblob", outblob);
        return tree;
    }

    /// <summary>
    /// A copy of a real TDX quote with MRCONFIGID replaced, as a hostile host's quoting service could answer (the
    /// signature no longer verifies; the agent never checks it, which is why the pin must not come from a quote).
    /// </summary>
    public static byte[] WithMrConfigId(byte[] quote, byte[] mrConfigId)
    {
        // Header 48 bytes, then (v5 only) body type u16 + body size u32; MRCONFIGID follows TEE_TCB_SVN, MRSEAM,
        // MRSIGNERSEAM, SEAMATTRIBUTES, TDATTRIBUTES, XFAM and MRTD in the TD report body: offset 184.
        var copy = quote.ToArray();
        var body = BitConverter.ToUInt16(copy, 0) == 5 ? 48 + 6 : 48;
        mrConfigId.CopyTo(copy, body + 184);
        Assert.Equal(mrConfigId, DcapQuote.Parse(copy).TdBody!.MrConfigId.ToArray());
        return copy;
    }

    private static ConfigFsTsmEvidenceProvider Provider(FakeDeviceTree tree, string provider, TdxMrConfigIdReader? tdx = null) =>
        tdx is null
            ? new(tree.Root, provider) { EntryName = Entry, RemoveEntry = false }
            : new(tree.Root, provider) { EntryName = Entry, RemoveEntry = false, TdxMrConfigId = tdx };

    [Fact]
    public async Task Snp_HostDataIsThePin()
    {
        var pin = RandomNumberGenerator.GetBytes(32);
        using var tree = ConfigFsTree("sev_guest", SnpReportWithHostData(pin));

        var measured = await Provider(tree, ConfigFsTsmEvidenceProvider.SevGuest).ReadKmsCaPinAsync(default);

        Assert.Equal(pin, measured.Sha256);
        Assert.Contains("SNP HOST_DATA", measured.Source);
        Assert.False(measured.Simulated);

        // Any report data will do for reading a launch-time field; the provider asks with zeros.
        Assert.Equal(new byte[64], File.ReadAllBytes(Path.Combine(tree.Root, Entry, "inblob")));
    }

    [VectorTheory]
    [InlineData("gosevguest_milan_v2_report.bin")]
    [InlineData("trustee_milan_v2_report.bin")]
    public async Task Snp_RealReportsWithZeroHostData_CarryNoPin(string vector)
    {
        var report = TestVectors.Read("snp", vector);
        Assert.False(SnpReport.Parse(report).HostData.Span.ContainsAnyExcept((byte)0));
        using var tree = ConfigFsTree("sev_guest", report);

        var measured = await Provider(tree, ConfigFsTsmEvidenceProvider.SevGuest).ReadKmsCaPinAsync(default);

        Assert.Null(measured.Sha256);
        Assert.Contains("all zeros", measured.Source);
    }

    [VectorTheory]
    [InlineData("trustee_emr_90c06f000000_v5_quote.bin")]
    [InlineData("gotdxguest_gcp_spr_00806f050000_v4_quote_8000.bin")]
    public async Task Tdx_ThePinIsTheTdsOwnMrConfigId_NeverTheQuotes(string vector)
    {
        // The quote comes from the host's quoting service: a hostile one answers with its own pin in MRCONFIGID.
        var hostsPin = RandomNumberGenerator.GetBytes(32);
        using var tree = ConfigFsTree("tdx_guest", WithMrConfigId(TestVectors.Read("tdx", vector), [.. hostsPin, .. new byte[16]]));

        var pin = RandomNumberGenerator.GetBytes(32);
        var measured = await Provider(tree, ConfigFsTsmEvidenceProvider.TdxGuest, TdxGuestTests.Reader([.. pin, .. new byte[16]])).ReadKmsCaPinAsync(default);
        Assert.Equal(pin, measured.Sha256);
        Assert.Equal("TD report (fake-tdx-guest) TDX MRCONFIGID", measured.Source);

        // A TD created without a pin has none, whatever the quote says.
        var none = await Provider(tree, ConfigFsTsmEvidenceProvider.TdxGuest, TdxGuestTests.Reader(null)).ReadKmsCaPinAsync(default);
        Assert.Null(none.Sha256);
        Assert.Contains("MRCONFIGID is all zeros", none.Source);

        // The quote is not even asked for: reading the pin needs nothing from the host.
        Assert.False(File.Exists(Path.Combine(tree.Root, Entry, "inblob")));
    }

    [VectorFact]
    public async Task Tdx_WithoutTheTdsOwnReport_AHostsQuoteIsRefusedAsAPinSource()
    {
        var hostsPin = RandomNumberGenerator.GetBytes(32);
        using var tree = ConfigFsTree("tdx_guest", WithMrConfigId(TestVectors.Read("tdx", "trustee_emr_90c06f000000_v5_quote.bin"), [.. hostsPin, .. new byte[16]]));
        var provider = Provider(tree, ConfigFsTsmEvidenceProvider.TdxGuest,
            new TdxMrConfigIdReader("/nonexistent/mrconfigid", new TdxGuestTests.FakeTdReport(null, present: false)));

        var e = await Assert.ThrowsAsync<EvidenceException>(() => provider.ReadKmsCaPinAsync(default));
        Assert.Contains("cannot be read from the TD's own report", e.Message);

        // Through the resolver: exit 6 (evidence), even with a command-line pin and --allow-unmeasured-pin.
        var refused = await Assert.ThrowsAsync<AgentException>(() => PinResolver.ResolveAsync(
            provider, new PinRequest { Unmeasured = hostsPin, AllowUnmeasured = true }, _ => Assert.Fail("no fallback expected"), default));
        Assert.Equal(AgentExitCodes.Evidence, refused.ExitCode);
        Assert.DoesNotContain(Convert.ToHexStringLower(hostsPin), refused.Message);
    }

    [Fact]
    public async Task Tdx_MrConfigIdWithANonZeroTail_IsNotAPin()
    {
        // A full 48-byte value (another scheme's SHA-384, say): taking its first 32 bytes as a pin would trust an accident.
        using var tree = ConfigFsTree("tdx_guest", []);
        var measured = await Provider(tree, ConfigFsTsmEvidenceProvider.TdxGuest, TdxGuestTests.Reader(SHA384.HashData("initdata"u8))).ReadKmsCaPinAsync(default);
        Assert.Null(measured.Sha256);
        Assert.Contains("not a Morphisms KMS CA pin", measured.NotAPin);
        Assert.Equal(SHA384.HashData("initdata"u8), measured.Field!.Value);
    }

    [Fact]
    public async Task SevGuest_PinReadOnANonSnpDevice_FailsCleanly()
    {
        var e = await Assert.ThrowsAsync<EvidenceException>(() => new SevGuestEvidenceProvider("/dev/null").ReadKmsCaPinAsync(default));
        Assert.Contains("SNP_GET_REPORT failed", e.Message);
    }

    [Fact]
    public async Task Gramine_ManifestVariableIsThePin()
    {
        var pin = RandomNumberGenerator.GetBytes(32);
        using var tree = new FakeDeviceTree();
        var env = new Dictionary<string, string?> { [GramineEvidenceProvider.PinVariable] = Convert.ToHexString(pin) };

        var measured = await new GramineEvidenceProvider(tree.Root, name => env.GetValueOrDefault(name)).ReadKmsCaPinAsync(default);
        Assert.Equal(pin, measured.Sha256);
        Assert.Contains("loader.env.MORPH_KMS_CA_SHA256", measured.Source);

        env.Clear();
        var none = await new GramineEvidenceProvider(tree.Root, name => env.GetValueOrDefault(name)).ReadKmsCaPinAsync(default);
        Assert.Null(none.Sha256);

        // A malformed manifest value is a broken build, never "no pin" (which could fall back to the command line).
        env[GramineEvidenceProvider.PinVariable] = "abc";
        await Assert.ThrowsAsync<EvidenceException>(() => new GramineEvidenceProvider(tree.Root, name => env.GetValueOrDefault(name)).ReadKmsCaPinAsync(default));
    }

    [Fact]
    public async Task Simulated_LaunchConfigThenHostData_AndTheyMustAgree()
    {
        using var authority = SimulatedTeeAuthority.Create(TimeProvider.System);
        var measurement = SHA384.HashData("bundle"u8);
        var a = RandomNumberGenerator.GetBytes(32);
        var b = RandomNumberGenerator.GetBytes(32);
        byte[] Config(byte[] pin) => Encoding.UTF8.GetBytes($$"""{"kms_ca_sha256":"{{Convert.ToHexStringLower(pin)}}"}""");

        var fromConfig = await new SimulatedEvidenceProvider(authority, measurement, "snp", null, Config(a)).ReadKmsCaPinAsync(default);
        Assert.Equal(a, fromConfig.Sha256);
        Assert.True(fromConfig.Simulated);

        var fromHostData = await new SimulatedEvidenceProvider(authority, measurement, "snp", a, "{}"u8.ToArray()).ReadKmsCaPinAsync(default);
        Assert.Equal(a, fromHostData.Sha256);
        Assert.Contains("SNP HOST_DATA", fromHostData.Source);

        Assert.Equal(a, (await new SimulatedEvidenceProvider(authority, measurement, "snp", a, Config(a)).ReadKmsCaPinAsync(default)).Sha256);
        var e = await Assert.ThrowsAsync<AgentException>(() => new SimulatedEvidenceProvider(authority, measurement, "snp", b, Config(a)).ReadKmsCaPinAsync(default));
        Assert.Equal(AgentExitCodes.Usage, e.ExitCode);

        var none = await new SimulatedEvidenceProvider(authority, measurement, "sgx").ReadKmsCaPinAsync(default);
        Assert.Null(none.Sha256);
        Assert.True(none.Simulated);
    }

    /// <summary>A launch configuration System.Text.Json parses but cannot read is a usage error, never an internal one.</summary>
    [Theory]
    [InlineData("""{"kms_ca_sha256":"\ud800"}""")]
    [InlineData("""{"\ud800":1}""")]
    [InlineData("""{"kms_ca_sha256":"00","kms_ca_sha256":"11"}""")]
    [InlineData("""[1]""")]
    public void Simulated_AnUnreadableLaunchConfig_IsAUsageError(string config)
    {
        var e = Assert.Throws<AgentException>(() => SimulatedEvidenceProvider.LaunchConfigPin(Encoding.UTF8.GetBytes(config)));
        Assert.Equal(AgentExitCodes.Usage, e.ExitCode);
        Assert.Contains("the launch configuration is not JSON", e.Message);
    }
}
